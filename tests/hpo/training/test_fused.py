"""Fused training: K models trained as one stack end where K separate `train` runs end."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch import nn

from hpo.training.data import Dataset, Split, load_dataset
from hpo.training.fused import FusionError, check_fusable, train_fused
from hpo.training.loop import TrainConfig, num_outputs, train
from models import create_model


def as_float64(split: Split) -> Split:
    """The split's model inputs stored as float64: float64 models, rounding out of the way."""
    return dataclasses.replace(split, x=split.inputs().double(), norm=None)


def float64(data: Dataset) -> Dataset:
    return dataclasses.replace(
        data, train=as_float64(data.train), val=as_float64(data.val), test=as_float64(data.test)
    )


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return float64(load_dataset("digits", seed=0, max_train=120, max_val=100))


@pytest.fixture(scope="module")
def rings() -> Dataset:
    return float64(load_dataset("rings", seed=0, max_train=150, max_val=100))


def network(data: Dataset, name: str, seed: int, **params: object) -> nn.Module:
    """Built as a trial builds it: its seed drawn first, then the weights."""
    torch.manual_seed(seed)
    kwargs = {"depth": 2, "width": 4, "init": "he_normal", **params}
    model = create_model(
        name, in_shape=data.in_shape, num_outputs=num_outputs(data.num_classes), **kwargs
    )
    return model.double()


def separate_and_fused(
    data: Dataset, name: str, configs: list[TrainConfig], **params: object
) -> tuple[list[nn.Module], list, list[nn.Module], object]:
    separate = [network(data, name, c.seed, **params) for c in configs]
    fused = [copy.deepcopy(m) for m in separate]
    results = [train(m, data, c) for m, c in zip(separate, configs, strict=True)]
    return separate, results, fused, train_fused(fused, data, configs)


def assert_same(separate, results, fused, outcome) -> None:
    for model, result, fused_model, trial in zip(
        separate, results, fused, outcome.trials, strict=True
    ):
        assert [r.epoch for r in trial.history] == [r.epoch for r in result.history]
        assert trial.stopped_early_at == result.stopped_early_at
        for ours, theirs in zip(trial.history, result.history, strict=True):
            assert ours.train_loss == pytest.approx(theirs.train_loss, rel=1e-5)
            assert ours.val_loss == pytest.approx(theirs.val_loss, rel=1e-5)
            assert ours.val_accuracy == pytest.approx(theirs.val_accuracy, abs=1e-9)
        expected, got = model.state_dict(), fused_model.state_dict()
        assert list(got) == list(expected)
        for key, value in expected.items():
            torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-8, msg=key)


# lr, seed, weight_decay, l1: three trials of one architecture, differing in all four
VARIED = [(1e-2, 1, 0.0, 0.0), (3e-3, 2, 1e-2, 1e-4), (2e-2, 3, 1e-3, 0.0)]


def configs(optimizer: str, **common: object) -> list[TrainConfig]:
    base = {"epochs": 2, "batch_size": 32, "optimizer": optimizer, **common}
    return [
        TrainConfig(lr=lr, seed=seed, weight_decay=wd, l1=l1, **base)  # type: ignore[arg-type]
        for lr, seed, wd, l1 in VARIED
    ]


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("batchnorm", [False, True])
def test_cnn_matches_separate_runs(digits: Dataset, optimizer: str, batchnorm: bool) -> None:
    assert_same(*separate_and_fused(digits, "cnn", configs(optimizer), batchnorm=batchnorm))


def test_mlp_with_schedule_warmup_and_augment_matches(digits: Dataset) -> None:
    trials = configs("adamw", schedule="cosine", augment="crop_flip")
    trials[1] = dataclasses.replace(trials[1], schedule="step", warmup_epochs=1)
    assert_same(*separate_and_fused(digits, "mlp", trials, batchnorm=True))


def test_binary_task_and_shared_batch_order_match(rings: Dataset) -> None:
    """Rings take one logit; one seed for all: the batches are gathered once, shared."""
    trials = [dataclasses.replace(c, seed=7) for c in configs("adam")]
    separate = [network(rings, "mlp", seed, batchnorm=True) for seed in (1, 2, 3)]
    fused = [copy.deepcopy(m) for m in separate]
    results = [train(m, rings, c) for m, c in zip(separate, trials, strict=True)]
    assert_same(separate, results, fused, train_fused(fused, rings, trials))


def test_patience_stops_each_model_where_its_own_run_stops(digits: Dataset) -> None:
    trials = [
        TrainConfig(epochs=5, batch_size=32, lr=lr, seed=seed, patience=1)
        for lr, seed in ((0.2, 1), (1e-3, 2), (0.05, 3))
    ]
    separate, results, fused, outcome = separate_and_fused(digits, "cnn", trials, batchnorm=True)
    assert any(r.stopped_early_at for r in results)  # the case under test happens
    assert not all(r.stopped_early_at for r in results)  # ... to some models only
    assert_same(separate, results, fused, outcome)


def test_batchnorm_running_stats_are_per_model(digits: Dataset) -> None:
    models = [network(digits, "cnn", seed, batchnorm=True) for seed in (1, 2)]
    train_fused(models, digits, configs("adam")[:2])
    means = [dict(m.named_buffers())["features.0.1.running_mean"] for m in models]
    assert not torch.allclose(means[0], means[1])  # each model kept its own statistics
    steps = 2 * -(-len(digits.train.y) // 32)  # two epochs of batches of 32
    tracked = [int(dict(m.named_buffers())["features.0.1.num_batches_tracked"]) for m in models]
    assert tracked == [steps, steps]


def test_pruned_model_keeps_its_state_at_the_epoch_it_stopped(digits: Dataset) -> None:
    trials = configs("adam")
    trials = [dataclasses.replace(c, epochs=3) for c in trials]
    one_epoch = network(digits, "cnn", trials[0].seed)
    train(one_epoch, digits, dataclasses.replace(trials[0], epochs=1))
    models = [network(digits, "cnn", c.seed) for c in trials]
    seen: list[tuple[int, int]] = []

    def prune_first(k: int, result) -> bool:
        seen.append((k, result.epoch))
        return k != 0  # model 0 is pruned after its first epoch

    outcome = train_fused(models, digits, trials, on_epoch=prune_first)
    assert outcome.trials[0].pruned_at == 1
    assert [len(t.history) for t in outcome.trials] == [1, 3, 3]
    assert seen.count((0, 1)) == 1 and (0, 2) not in seen
    for key, value in one_epoch.state_dict().items():
        torch.testing.assert_close(models[0].state_dict()[key], value, rtol=1e-5, atol=1e-8)
    assert outcome.samples_per_second > 0


def test_dropout_rates_may_differ_and_each_applies(digits: Dataset) -> None:
    """Dropout draws are vmap's, not the trial's generator: same distribution, other draws;
    so the check is that each model's own rate applies: one init, one config, two rates."""
    models = [network(digits, "mlp", 1, dropout=rate) for rate in (0.05, 0.9)]
    trial = configs("adam")[0]
    outcome = train_fused(models, digits, [trial, trial])
    light, heavy = (t.history[-1].train_loss for t in outcome.trials)
    assert heavy > light  # 90% of the units dropped: a much noisier fit of the train split
    assert [m.features[1][2].p for m in models] == [0.05, 0.9]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"width": 8},
            "fused training needs one architecture: model 1 differs from model 0 (module 'features.0.0' is Conv2d 1, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), not Conv2d 1, 4,",
        ),
        (
            {"batchnorm": True},
            "fused training needs one architecture: model 1 differs from model 0",
        ),
        ({"depth": 3}, "fused training needs one architecture: model 1 differs from model 0"),
    ],
)
def test_refuses_mismatched_architectures(digits: Dataset, params: dict, message: str) -> None:
    models = [network(digits, "cnn", 1), network(digits, "cnn", 2, **params)]
    with pytest.raises(FusionError) as error:
        train_fused(models, digits, configs("adam")[:2])
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_refuses_configs_that_must_be_shared(digits: Dataset) -> None:
    models = [network(digits, "cnn", 1), network(digits, "cnn", 2)]
    trials = configs("adam")[:2]
    with pytest.raises(
        FusionError, match="one batch_size for all models: model 1 has 64, model 0 has 32"
    ):
        check_fusable(models, [trials[0], dataclasses.replace(trials[1], batch_size=64)])
    with pytest.raises(FusionError, match="one config per model: 2 models, 1 configs"):
        check_fusable(models, trials[:1])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_matches_separate_runs_on_cuda(digits: Dataset, name: str) -> None:
    """On CUDA `train` uses fused Adam, channels_last and cuDNN's chosen kernels; the
    stack must still land where the separate runs do."""
    data = digits.to("cuda")
    assert_same(*separate_and_fused(data, name, configs("adamw"), batchnorm=True))
