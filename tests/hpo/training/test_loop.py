"""The training loop: learns, resumes exactly, stops and fails the way callers rely on."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hpo.training.loop
from hpo.errors import DataError
from hpo.training.data import Dataset, Split, load_dataset
from hpo.training.loop import (
    Checkpoint,
    DeviceTimer,
    DivergedError,
    EpochResult,
    StopRequested,
    TrainConfig,
    augment_generator,
    choose_step_mode,
    crop_flip,
    evaluate,
    l1_penalty,
    loss_and_correct,
    lr_factor,
    num_outputs,
    stopped_early,
    train,
)
from models import create_model


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def rings() -> Dataset:
    return load_dataset("rings", seed=0, max_train=600)


def cnn(data: Dataset, seed: int = 0, **params: object) -> nn.Module:
    torch.manual_seed(seed)
    kwargs = {"depth": 2, "width": 16, "dropout": 0.1, "batchnorm": True, "init": "he_normal"}
    kwargs.update(params)
    return create_model(
        "cnn", in_shape=data.in_shape, num_outputs=num_outputs(data.num_classes), **kwargs
    )


def test_learns_digits_well_above_chance(digits: Dataset) -> None:
    result = train(cnn(digits), digits, TrainConfig(epochs=3, lr=1e-2, seed=1))
    assert [r.epoch for r in result.history] == [1, 2, 3]
    assert result.final.val_accuracy > 0.6  # chance is 0.1
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.samples_per_second > 0
    assert result.seconds > 0
    # The training steps alone: part of the wall time, which adds evaluation.
    assert 0 < result.device_seconds < result.seconds


def test_multiclass_and_binary_heads() -> None:
    assert num_outputs(10) == 10
    assert num_outputs(2) == 1


def test_loss_and_correct_multiclass_matches_cross_entropy() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0], [1.0, 0.0, 2.0]])
    y = torch.tensor([0, 1, 0])
    loss, correct = loss_and_correct(logits, y)
    assert loss.item() == pytest.approx(F.cross_entropy(logits, y).item())
    assert correct.item() == 2


def test_loss_and_correct_binary_uses_one_logit() -> None:
    logits = torch.tensor([[2.0], [-1.0], [0.5]])
    y = torch.tensor([1, 1, 0])
    loss, correct = loss_and_correct(logits, y)
    expected = F.binary_cross_entropy_with_logits(logits[:, 0], y.float())
    assert loss.item() == pytest.approx(expected.item())
    assert correct.item() == 1


def test_binary_data_trains_one_logit_model(rings: Dataset) -> None:
    torch.manual_seed(0)
    model = create_model("mlp", in_shape=rings.in_shape, num_outputs=1, depth=2, width=32)
    result = train(model, rings, TrainConfig(epochs=4, lr=1e-2, batch_size=32, seed=0))
    assert result.final.val_accuracy > 0.75  # chance is 0.5, best ~0.95


def test_resume_from_checkpoint_equals_unbroken_run(digits: Dataset) -> None:
    config = TrainConfig(epochs=3, lr=3e-3, seed=7, optimizer="adamw", weight_decay=1e-3)
    saved: list[Checkpoint] = []
    unbroken_model = cnn(digits)  # dropout on: the RNG state must be restored too
    unbroken = train(
        unbroken_model, digits, config, checkpoint=lambda c: saved.append(copy.deepcopy(c))
    )
    assert [c.epoch for c in saved] == [1, 2, 3]
    torch.manual_seed(12345)  # a different global RNG state and a different init
    resumed_model = cnn(digits, seed=99)
    torch.rand(100)
    resumed = train(resumed_model, digits, config, resume=saved[1])
    assert resumed.history == unbroken.history  # epochs 1-2 carried over, 3 identical
    for key, value in unbroken_model.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[key]), key


def test_nan_loss_raises_diverged(digits: Dataset) -> None:
    x = digits.train.inputs().clone()  # float inputs: a uint8 pixel cannot be NaN
    x[0] = float("nan")
    broken = dataclasses.replace(digits, train=Split(x, digits.train.y))
    with pytest.raises(DivergedError, match="epoch 1"):
        train(cnn(broken, batchnorm=False), broken, TrainConfig(epochs=3))


def test_should_stop_raises_at_epoch_boundary(digits: Dataset) -> None:
    seen: list[EpochResult] = []
    with pytest.raises(StopRequested, match="before epoch 3"):
        train(
            cnn(digits),
            digits,
            TrainConfig(epochs=5),
            on_epoch=seen.append,
            should_stop=lambda: len(seen) >= 2,
        )
    assert [r.epoch for r in seen] == [1, 2]  # both epochs finished before the stop


def test_on_epoch_can_raise_to_end_the_run(digits: Dataset) -> None:
    class Pruned(Exception):
        pass

    seen: list[int] = []

    def prune_at_two(result: EpochResult) -> None:
        seen.append(result.epoch)
        if result.epoch == 2:
            raise Pruned

    with pytest.raises(Pruned):
        train(cnn(digits), digits, TrainConfig(epochs=5), on_epoch=prune_at_two)
    assert seen == [1, 2]


def test_evaluate_keeps_training_mode_and_counts_all(digits: Dataset) -> None:
    model = cnn(digits)
    model.train()
    loss, accuracy = evaluate(model, digits.val, batch_size=100)  # several batches
    assert model.training
    assert 0.0 <= accuracy <= 1.0
    assert loss > 0
    model.eval()
    evaluate(model, digits.val)
    assert not model.training


def test_unknown_optimizer_is_refused(digits: Dataset) -> None:
    with pytest.raises(ValueError, match="unknown optimizer"):
        train(cnn(digits), digits, TrainConfig(epochs=1, optimizer="lbfgs"))


SPLITS = ("train", "val", "test")


def test_uint8_images_train_as_their_float_inputs_would(digits: Dataset) -> None:
    """Slicing raw pixels and standardizing per batch is the float path, step for step."""
    assert digits.train.x.dtype == torch.uint8
    as_float = dataclasses.replace(
        digits, **{s: Split(getattr(digits, s).inputs(), getattr(digits, s).y) for s in SPLITS}
    )
    assert as_float.train.x.dtype == torch.float32 and as_float.train.norm is None
    config = TrainConfig(epochs=2, lr=3e-3, seed=3)
    assert (
        train(cnn(digits), digits, config).history == train(cnn(as_float), as_float, config).history
    )
    model = cnn(digits)
    # Another batch size sums the loss in another order: equal up to rounding, which differs
    # between CPUs' kernels (bit-equal on Intel, not on AMD EPYC), so compare with a tolerance.
    by_50 = evaluate(model, digits.val, batch_size=50)
    assert by_50 == pytest.approx(evaluate(model, as_float.val), rel=1e-6, abs=1e-9)


def test_cuda_tricks_change_nothing_on_cpu(digits: Dataset) -> None:
    base = TrainConfig(epochs=1, lr=3e-3, seed=2)
    plain = dataclasses.replace(base, bf16=False, channels_last=False)
    assert train(cnn(digits), digits, base).history == train(cnn(digits), digits, plain).history


def test_device_timer_adds_up_sections_and_skips_failed_ones() -> None:
    timer = DeviceTimer(torch.device("cpu"))
    assert timer.seconds == 0.0
    with timer.section():
        sum(range(10_000))
    first = timer.seconds
    assert first > 0
    with pytest.raises(RuntimeError, match="boom"), timer.section():
        raise RuntimeError("boom")
    assert timer.seconds == first  # a section that raised is not counted
    with timer.section():
        sum(range(10_000))
    assert timer.seconds > first


def test_timer_passed_in_keeps_the_time_of_a_run_that_raised(digits: Dataset) -> None:
    timer = DeviceTimer(torch.device("cpu"))

    def stop_after_one(result: EpochResult) -> None:
        raise RuntimeError("pruned")

    with pytest.raises(RuntimeError, match="pruned"):
        train(cnn(digits), digits, TrainConfig(epochs=3), on_epoch=stop_after_one, timer=timer)
    assert timer.seconds > 0  # epoch 1's training steps


# --- training techniques: schedule, augmentation, L1, early stopping --------------------------


@pytest.mark.parametrize(
    ("schedule", "progress", "expected"),
    [
        ("none", 0.0, 1.0),
        ("none", 9.5, 1.0),
        ("step", 4.99, 1.0),  # 10 epochs: x0.1 from epoch 5.0 (50%), x0.01 from 7.5 (75%)
        ("step", 5.0, 0.1),
        ("step", 7.5, 0.01),
        ("cosine", 0.0, 1.0),
        ("cosine", 5.0, 0.5),  # half way: (1 + cos(pi / 2)) / 2
        ("cosine", 10.0, 0.0),
    ],
)
def test_lr_factor_without_warmup(schedule: str, progress: float, expected: float) -> None:
    assert lr_factor(schedule, progress, 10) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("schedule", "progress", "expected"),
    [
        ("cosine", 0.0, 0.1),  # warmup starts at lr / 10
        ("cosine", 1.0, 0.55),  # half of a 2-epoch warmup: 0.1 + 0.9 / 2
        ("cosine", 2.0, 1.0),  # warmup done: cosine over the 8 epochs left
        ("cosine", 6.0, 0.5),  # 4 of 8: the middle of the cosine
        ("cosine", 8.0, (1 - 2**-0.5) / 2),  # 6 of 8: (1 + cos 3pi/4) / 2
        ("step", 1.0, 0.55),
        ("step", 4.0, 1.0),
        ("step", 5.0, 0.1),  # milestones stay at 50% / 75% of all epochs
        ("none", 3.0, 1.0),
    ],
)
def test_lr_factor_with_warmup(schedule: str, progress: float, expected: float) -> None:
    assert lr_factor(schedule, progress, 10, warmup_epochs=2) == pytest.approx(expected)


def test_lr_factor_refuses_an_unknown_schedule() -> None:
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        lr_factor("linear", 0.0, 10)


def test_schedule_sets_the_lr_each_step_and_resumes_exactly(digits: Dataset) -> None:
    config = TrainConfig(epochs=3, lr=1e-2, seed=5, schedule="cosine", warmup_epochs=1)
    saved: list[Checkpoint] = []
    unbroken_model = cnn(digits)
    unbroken = train(
        unbroken_model, digits, config, checkpoint=lambda c: saved.append(copy.deepcopy(c))
    )
    # The last step of epoch 3 of 3: (1 + cos(pi * (steps - 1) / (2 * steps))) / 2 of lr.
    steps = -(-len(digits.train.y) // config.batch_size)
    last = saved[-1].optimizer["param_groups"][0]["lr"]
    assert last == pytest.approx(1e-2 * lr_factor("cosine", 2 + (steps - 1) / steps, 3, 1))
    assert 0 < last < 1e-3
    resumed_model = cnn(digits, seed=99)
    resumed = train(resumed_model, digits, config, resume=saved[0])
    assert resumed.history == unbroken.history
    for key, value in unbroken_model.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[key]), key
    constant = train(cnn(digits), digits, dataclasses.replace(config, schedule="none"))
    assert constant.history != unbroken.history


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_crop_flip_keeps_shape_and_dtype_reproduces_and_changes_the_batch(dtype) -> None:
    x = (torch.arange(4 * 3 * 32 * 32) % 251).reshape(4, 3, 32, 32).to(dtype)
    first = crop_flip(x, augment_generator(x.device, seed=1, epoch=1))
    assert first.shape == x.shape and first.dtype == dtype
    assert torch.equal(first, crop_flip(x, augment_generator(x.device, seed=1, epoch=1)))
    assert not torch.equal(first, x)
    assert not torch.equal(first, crop_flip(x, augment_generator(x.device, seed=1, epoch=2)))


def test_crop_flip_is_a_shifted_possibly_mirrored_window_of_the_padded_image() -> None:
    x = torch.arange(1.0, 1 + 64 * 28 * 28).reshape(64, 1, 28, 28)
    out = crop_flip(x, torch.Generator().manual_seed(0))
    padded = F.pad(x, (2, 2, 2, 2))  # 28x28: padding 2
    flips = 0
    for image, source in zip(out, padded, strict=True):
        windows = [source[:, dy : dy + 28, dx : dx + 28] for dy in range(5) for dx in range(5)]
        plain = any(torch.equal(image, w) for w in windows)
        mirrored = any(torch.equal(image, w.flip(-1)) for w in windows)
        assert plain or mirrored
        flips += mirrored
    assert 0 < flips < 64  # both kinds drawn


def test_crop_flip_refuses_vectors() -> None:
    with pytest.raises(ValueError, match="needs image batches"):
        crop_flip(torch.zeros(8, 2), torch.Generator())


@pytest.fixture(scope="module")
def fashion() -> Dataset:
    try:
        return load_dataset("fashion-mnist", seed=0, max_train=256, max_val=100)
    except DataError as exc:  # installed by dataset-fashion-mnist (.ci/run)
        pytest.skip(str(exc))


def test_augmented_training_runs_reproduces_and_differs(fashion: Dataset) -> None:
    config = TrainConfig(epochs=1, lr=3e-3, seed=4, augment="crop_flip")
    first = train(cnn(fashion, width=8), fashion, config)
    assert first.final.val_accuracy > 0
    assert train(cnn(fashion, width=8), fashion, config).history == first.history
    plain = train(cnn(fashion, width=8), fashion, dataclasses.replace(config, augment="none"))
    assert plain.history != first.history


def test_unknown_augment_is_refused(digits: Dataset) -> None:
    with pytest.raises(ValueError, match="unknown augment 'mixup'"):
        train(cnn(digits), digits, TrainConfig(epochs=1, augment="mixup"))


def test_l1_penalty_sums_the_absolute_weights_not_biases() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.0]]))
        model[2].weight.copy_(torch.tensor([[-3.0, 0.25]]))
        model[0].bias.fill_(100.0)  # not penalized
    assert l1_penalty(model).item() == pytest.approx(1 + 2 + 0.5 + 3 + 0.25)


def test_l1_adds_its_penalty_to_the_training_loss(rings: Dataset, monkeypatch) -> None:
    """The loss backpropagated is the data loss plus l1 * sum |w| (hand-computed here)."""
    model = create_model("mlp", in_shape=rings.in_shape, num_outputs=1, depth=1, width=4)
    weights = [p for p in model.parameters() if p.dim() > 1]
    expected_penalty = sum(w.abs().sum().item() for w in weights)
    seen: list[float] = []
    real_backward = torch.Tensor.backward

    def record(loss: torch.Tensor, *args: object, **kwargs: object) -> None:
        seen.append(loss.item())
        real_backward(loss, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "backward", record)
    config = TrainConfig(epochs=1, lr=0.0, batch_size=len(rings.train.y), optimizer="sgd")
    plain = train(copy.deepcopy(model), rings, config)
    train(copy.deepcopy(model), rings, dataclasses.replace(config, l1=0.01))
    assert len(seen) == 2  # one full batch each
    assert seen[1] - seen[0] == pytest.approx(0.01 * expected_penalty, rel=1e-4)
    assert plain.final.train_loss == pytest.approx(seen[0], rel=1e-5)  # reported: data loss


def history_of(val_losses: list[float]) -> list[EpochResult]:
    return [EpochResult(i + 1, 1.0, loss, 0.5) for i, loss in enumerate(val_losses)]


def test_stopped_early_counts_epochs_since_the_best_val_loss() -> None:
    curve = [1.0, 0.8, 0.9, 0.8, 0.85]  # best at epoch 2; a tie (0.8 again) is no improvement
    assert not stopped_early(history_of(curve[:3]), patience=2)
    assert stopped_early(history_of(curve[:4]), patience=2)
    assert not stopped_early(history_of(curve[:4]), patience=3)
    assert stopped_early(history_of(curve), patience=3)
    assert not stopped_early(history_of(curve), patience=None)
    assert not stopped_early([], patience=1)


def test_patience_ends_the_run_on_a_constructed_val_curve(
    rings: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    curve = iter([(1.0, 0.6), (0.5, 0.7), (0.7, 0.8), (0.6, 0.9), (0.4, 1.0), (0.3, 1.0)])
    monkeypatch.setattr(hpo.training.loop, "evaluate", lambda *args, **kwargs: next(curve))
    seen: list[int] = []
    model = create_model("mlp", in_shape=rings.in_shape, num_outputs=1, depth=1, width=4)
    result = train(
        model, rings, TrainConfig(epochs=6, patience=2), on_epoch=lambda r: seen.append(r.epoch)
    )
    assert result.stopped_early_at == 4 and seen == [1, 2, 3, 4]
    assert [r.val_loss for r in result.history] == [1.0, 0.5, 0.7, 0.6]
    no_patience = train(model, rings, TrainConfig(epochs=2))
    assert no_patience.stopped_early_at is None


def test_resuming_a_run_that_stopped_early_trains_no_more(rings: Dataset) -> None:
    model = create_model("mlp", in_shape=rings.in_shape, num_outputs=1, depth=1, width=4)
    saved = Checkpoint(
        3,
        model.state_dict(),
        torch.optim.Adam(model.parameters()).state_dict(),
        history_of([0.5, 0.6, 0.7]),
    )
    result = train(model, rings, TrainConfig(epochs=6, patience=2), resume=saved)
    assert result.stopped_early_at == 3 and len(result.history) == 3


def test_cuda_graph_asked_on_cpu_trains_eagerly_and_says_why(digits: Dataset) -> None:
    config = TrainConfig(epochs=2, lr=1e-2, seed=3, batch_size=50)
    eager = train(cnn(digits, dropout=0.0), digits, config)
    asked = train(cnn(digits, dropout=0.0), digits, dataclasses.replace(config, cuda_graph=True))
    assert asked.history == eager.history  # the very same steps: bit for bit
    assert asked.step_mode == "eager"
    assert asked.step_mode_reason == "no CUDA device (training on cpu): trained eagerly"
    assert asked.step_attrs == {
        "step_mode": "eager",
        "step_mode_reason": "no CUDA device (training on cpu): trained eagerly",
    }
    assert eager.step_attrs == {}  # not asked: no attrs written


def test_choose_step_mode_wants_cuda_and_one_full_batch() -> None:
    graph = TrainConfig(cuda_graph=True, batch_size=64)
    cuda = torch.device("cuda")
    assert choose_step_mode(TrainConfig(), cuda, 1000) == ("eager", "")
    assert choose_step_mode(graph, cuda, 1000)[0] == "graph"
    assert choose_step_mode(graph, cuda, 63) == (
        "eager",
        "no full batch to capture (63 samples, batch_size 64): trained eagerly",
    )
    assert choose_step_mode(graph, torch.device("cpu"), 1000)[0] == "eager"


def test_failed_capture_falls_back_to_eager_with_the_same_result(
    digits: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A graph run whose compilation raises on its first full batch: buffers (BatchNorm)
    restored, the step redone eagerly, the run eager from then on, the reason recorded."""
    calls: list[int] = []

    def broken_compile(model: nn.Module, **options: object) -> object:
        def compiled(x: torch.Tensor) -> torch.Tensor:
            calls.append(1)
            model(x)  # runs (moving BatchNorm's statistics) and then fails, as a capture might
            raise RuntimeError("capture failed here\nsecond line")

        return compiled

    config = TrainConfig(epochs=2, lr=1e-2, seed=3, batch_size=50)
    eager = train(cnn(digits, dropout=0.0), digits, config)
    monkeypatch.setattr(hpo.training.loop, "choose_step_mode", lambda *a: ("graph", "forced"))
    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: None)
    monkeypatch.setattr(hpo.training.loop, "_cudagraph_skips", lambda: 0)
    fell_back = train(
        cnn(digits, dropout=0.0), digits, dataclasses.replace(config, cuda_graph=True)
    )
    assert calls == [1]  # tried once, never again
    assert fell_back.history == eager.history
    assert fell_back.step_mode == "eager"
    assert fell_back.step_mode_reason == (
        "graph capture failed (RuntimeError: capture failed here): trained eagerly"
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_matches_eager_on_cuda(digits: Dataset) -> None:
    """Full batches replay the captured step, the smaller last one runs eagerly; the
    compiled kernels round differently, so equal within tolerance, not bit for bit."""
    data = digits.to("cuda")
    config = TrainConfig(epochs=3, lr=3e-3, seed=3, batch_size=64)
    assert len(data.train) % config.batch_size != 0  # the eager tail is exercised too
    eager = train(cnn(data, dropout=0.0), data, config)
    graph = train(cnn(data, dropout=0.0), data, dataclasses.replace(config, cuda_graph=True))
    assert (graph.step_mode, eager.step_mode) == ("graph", "eager")
    assert "skipped" not in graph.step_mode_reason  # inductor really captured it
    for ours, theirs in zip(graph.history, eager.history, strict=True):
        assert ours.train_loss == pytest.approx(theirs.train_loss, rel=2e-3)
        assert ours.val_loss == pytest.approx(theirs.val_loss, rel=2e-3)
        assert ours.val_accuracy == pytest.approx(theirs.val_accuracy, abs=0.02)


@pytest.mark.slow
def test_real_compile_without_cuda_says_capture_was_skipped(
    digits: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The graph path forced onto a CPU: torch.compile really runs (a minute cold), inductor
    declines to capture a CPU graph and counts it, and the run says "compiled", not "graph"."""
    monkeypatch.setattr(hpo.training.loop, "choose_step_mode", lambda *a: ("graph", "forced"))
    config = TrainConfig(epochs=1, lr=1e-2, seed=3, batch_size=64)
    compiled = train(cnn(digits, dropout=0.0), digits, dataclasses.replace(config, cuda_graph=True))
    eager = train(cnn(digits, dropout=0.0), digits, config)
    assert compiled.step_mode == "compiled"
    assert compiled.step_mode_reason.startswith("inductor skipped CUDA-graph capture")
    assert compiled.final.val_loss == pytest.approx(eager.final.val_loss, rel=1e-3)
