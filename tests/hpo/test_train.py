"""The training loop: learns, resumes exactly, stops and fails the way callers rely on."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hpo.data import Dataset, Split, load_dataset
from hpo.train import (
    Checkpoint,
    DeviceTimer,
    DivergedError,
    EpochResult,
    StopRequested,
    TrainConfig,
    evaluate,
    loss_and_correct,
    num_outputs,
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
    assert evaluate(model, digits.val, batch_size=50) == evaluate(model, as_float.val)


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
