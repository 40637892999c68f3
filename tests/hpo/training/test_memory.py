"""The memory guard: estimates from params alone, a limit per worker, too-large trials fail."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest
import torch
from optuna.trial import TrialState

from hpo.config.rules import MAX_BATCH, MAX_DEPTH, MAX_WIDTH
from hpo.config.spec import load_spec
from hpo.errors import SpecError
from hpo.runtime.worker import run_worker
from hpo.storage.open import open_storage
from hpo.study.create import open_study
from hpo.training import memory
from hpo.training.memory import (
    SAFETY,
    TrialTooLarge,
    check_fits,
    estimate_memory,
    host_memory_bytes,
    largest_config,
    largest_config_warning,
    memory_limit_mb,
)
from models import create_model
from tests.helpers import study_text

HUGE = {"depth": 8, "width": 8000, "batch_size": 128}  # 448M parameters: grew a worker to 7.4 GB


@pytest.mark.parametrize(
    ("model", "in_shape"),
    [
        ("mlp", (2,)),
        ("mlp", (1, 28, 28)),
        ("cnn", (1, 8, 8)),
        ("cnn", (3, 32, 32)),
        ("resnet", (3, 32, 32)),
    ],
)
@pytest.mark.parametrize(
    "params",
    [
        {"depth": 1, "width": 8},
        {"depth": 3, "width": 48, "batchnorm": True, "skip": "residual", "dropout": 0.1},
        {"depth": 4, "width": 16, "skip": "highway", "init": "orthogonal"},
    ],
)
def test_parameter_count_matches_the_real_model(model, in_shape, params) -> None:
    real = create_model(model, in_shape=in_shape, num_outputs=10, **params)
    expected = sum(p.numel() for p in real.parameters())
    estimate = estimate_memory(model, {**params, "lr": 0.01}, in_shape, 10)
    assert estimate.parameters == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize("model", ["cnn", "resnet"])
def test_pool_and_kernel_pass_through_to_the_meta_model(model: str) -> None:
    params = {"depth": 2, "width": 8, "kernel": 5} | ({"pool": "avg"} if model == "cnn" else {})
    real = create_model(model, in_shape=(1, 28, 28), num_outputs=10, **params)
    estimate = estimate_memory(model, {**params, "schedule": "cosine", "l1": 1e-4}, (1, 28, 28), 10)
    assert estimate.parameters == sum(p.numel() for p in real.parameters())
    small = estimate_memory(model, {**params, "kernel": 3}, (1, 28, 28), 10)
    assert small.parameters < estimate.parameters


def test_estimate_grows_with_the_configuration() -> None:
    def mb(**params: object) -> float:
        return estimate_memory("cnn", params, (3, 32, 32), 10).mb

    assert mb(width=64) > mb(width=16)
    assert mb(depth=6) > mb(depth=2)
    assert mb(batch_size=8192) > mb(batch_size=32)  # below 2048 the evaluation batch rules
    assert mb(depth=6, width=128, optimizer="adam") > mb(depth=6, width=128, optimizer="sgd")
    huge = estimate_memory("mlp", HUGE, (2,), 1)
    assert huge.parameters > 440_000_000
    assert 6_000 < huge.mb < 12_000  # weights, gradients and Adam's two buffers: ~7 GB


def _spec(tmp_path: Path, *, space: str, train: str = "") -> object:
    path = tmp_path / "m.toml"
    path.write_text(study_text("m", space, train=train), encoding="utf-8")
    return load_spec(path)


def test_check_fits_says_estimated_and_limit(tmp_path: Path) -> None:
    spec = _spec(tmp_path, space="width = 64", train="max_memory_mb = 50")
    check_fits(spec, {"width": 64}, (2,), 1, "cpu")  # a small model fits
    with pytest.raises(TrialTooLarge) as info:
        check_fits(spec, HUGE, (2,), 1, "cpu")
    message = str(info.value)
    assert message.startswith("too large: estimated ")
    assert "limit 50 MB ([train] max_memory_mb)" in message
    assert "448,088,001 parameters" in message  # exact: 8 layers of 8000 units, one output


def test_default_limit_is_this_workers_share_of_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HPO_WORKERS_ON_DEVICE", raising=False)
    one = memory_limit_mb(None, "cpu")
    assert one == pytest.approx(host_memory_bytes() * SAFETY / 2**20)
    monkeypatch.setenv("HPO_WORKERS_ON_DEVICE", "4")
    assert memory_limit_mb(None, "cpu") == pytest.approx(one / 4)
    assert memory_limit_mb(123.0, "cpu") == 123.0
    if torch.cuda.is_available():  # a GPU worker's share is of its GPU
        total = torch.cuda.get_device_properties(0).total_memory / 2**20
        assert memory_limit_mb(None, "cuda:0") < total / 4


@pytest.mark.parametrize(
    ("v2", "v1", "expected"),
    [
        ("max", "2147483648", 2**31),  # cgroup v1 only: v2's file says no limit, or is absent
        (None, "2147483648", 2**31),
        ("1073741824", None, 2**30),
        (None, "9223372036854771712", None),  # v1's "no limit": the physical memory
        (None, None, None),
    ],
)
def test_host_memory_reads_cgroup_v2_and_v1_limits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, v2: str | None, v1: str | None, expected
) -> None:
    paths = (tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes")
    for path, text in zip(paths, (v2, v1), strict=True):
        if text is not None:
            path.write_text(text + "\n")
    monkeypatch.setattr(memory, "CGROUP_LIMITS", paths)
    physical = memory.os.sysconf("SC_PAGE_SIZE") * memory.os.sysconf("SC_PHYS_PAGES")
    assert host_memory_bytes() == (physical if expected is None else min(physical, expected))


@pytest.mark.parametrize(
    ("model", "in_shape"), [("mlp", (2,)), ("cnn", (3, 32, 32)), ("resnet", (3, 32, 32))]
)
def test_the_largest_accepted_model_is_estimated_without_building_it(model, in_shape) -> None:
    params = {"depth": MAX_DEPTH, "width": MAX_WIDTH, "batch_size": MAX_BATCH, "skip": "highway"}
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    estimate = estimate_memory(model, params, in_shape, 10)
    assert estimate.parameters > 10**9  # built for real, this would take gigabytes
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mb < 200
    hits = memory._trace.cache_info().hits
    assert estimate_memory(model, {**params, "batch_size": 8}, in_shape, 10).parameters == (
        estimate.parameters
    )
    assert memory._trace.cache_info().hits == hits + 1  # the next trial's estimate is free


def test_max_memory_mb_is_validated(tmp_path: Path) -> None:
    assert _spec(tmp_path, space="", train="max_memory_mb = 512").train.max_memory_mb == 512
    assert _spec(tmp_path, space="").train.max_memory_mb is None
    for bad in ("0", "-1", '"lots"', "true"):
        with pytest.raises(SpecError, match=r"train\.max_memory_mb: .* megabytes > 0"):
            _spec(tmp_path, space="", train=f"max_memory_mb = {bad}")


def test_largest_config_takes_the_costliest_end_of_each_entry(tmp_path: Path) -> None:
    spec = _spec(
        tmp_path,
        space="""
depth = { low = 1, high = 7, step = 2 }
width = { low = 8, high = 512, log = true }
batch_size = { choices = [32, 256, 64] }
optimizer = { choices = ["adam", "sgd"] }
skip = { choices = ["none", "highway", "residual"] }
batchnorm = { choices = [false, true] }
dropout = { low = 0.0, high = 0.5 }
activation = { choices = ["tanh", "relu"] }
lr = { low = 1e-4, high = 1e-1, log = true }
weight_decay = 0.0
""",
    )
    largest = largest_config(spec.space)
    assert largest["depth"] == 7 and largest["width"] == 512 and largest["batch_size"] == 256
    assert (largest["optimizer"], largest["skip"], largest["batchnorm"]) == (
        "adam",
        "highway",
        True,
    )
    assert largest["dropout"] == 0.5 and largest["weight_decay"] == 0.0
    assert largest["activation"] in ("tanh", "relu")


def test_launch_warning_when_the_largest_configuration_cannot_fit(tmp_path: Path) -> None:
    space = "width = { low = 8, high = 8000 }\ndepth = { low = 1, high = 8 }\nbatch_size = 128"
    spec = _spec(tmp_path, space=space, train="max_memory_mb = 1000")
    warning = largest_config_warning(spec, (2,), 1, "cpu")
    assert warning is not None and "largest configuration" in warning and "too large" in warning
    small = _spec(tmp_path, space="width = { low = 8, high = 16 }", train="max_memory_mb = 1000")
    assert largest_config_warning(small, (2,), 1, "cpu") is None


def test_a_trial_too_large_fails_with_the_reason_and_the_worker_goes_on(
    sqlite_url: str, tmp_path: Path
) -> None:
    spec = _spec(
        tmp_path, space="depth = 8\nwidth = 8000\nbatch_size = 128", train="max_memory_mb = 1000"
    )
    storage = open_storage(sqlite_url)
    study = open_study(storage, spec)

    report = run_worker(storage, "m")  # the real objective; refused before building a model

    assert report.states == {"FAIL": 2}
    for trial in study.get_trials():
        assert trial.state == TrialState.FAIL
        assert "too large: estimated" in trial.user_attrs["fail_reason"]
        assert "n_params" not in trial.user_attrs  # no model was built
