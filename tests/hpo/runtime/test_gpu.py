"""Training on a CUDA device: uint8 data on the GPU, measurements, bf16, out-of-memory trials.

Skipped where torch sees no CUDA device. Fashion-MNIST is found as everywhere else
(`HPO_DATA`, then /usr/share/datasets/fashion-mnist).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState
from torch import nn

from hpo.config.spec import StudySpec, load_spec
from hpo.runtime.worker import run_worker
from hpo.storage.open import open_storage
from hpo.study.create import open_study
from hpo.training.data import Dataset, load_dataset
from hpo.training.loop import DeviceTimer, TrainConfig, evaluate, train
from hpo.training.objective import Objective
from models import create_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

MAX_TRAIN = 4000  # enough for a CNN to beat chance by far in two epochs, still seconds
MAX_VAL = 1000

STUDY = """
[study]
name = "{name}"
trials = {trials}

[model]
name = "cnn"

[data]
name = "fashion-mnist"
max_train = {max_train}
max_val = {max_val}

[train]
epochs = 2
{train_extra}

[sampler]
name = "random"
seed = 0

[pruner]
name = "none"

[space]
depth = {depth}
width = {width}
batchnorm = true
lr = 1e-2
batch_size = 128
"""


def write(tmp_path: Path, name: str, **fields: object) -> Path:
    values = {"trials": 1, "max_train": MAX_TRAIN, "max_val": MAX_VAL, "depth": 2, "width": 16}
    values["train_extra"] = ""
    path = tmp_path / f"{name}.toml"
    path.write_text(STUDY.format(name=name, **{**values, **fields}))
    return path


def cuda_data(spec: StudySpec) -> Dataset:
    data = spec.data
    return load_dataset(
        data.name, seed=data.seed, max_train=data.max_train, max_val=data.max_val
    ).to("cuda")


@pytest.fixture
def clean_cuda() -> Iterator[None]:
    """Each test starts and ends with no cached blocks and no memory cap of ours."""
    torch.cuda.empty_cache()
    yield
    torch.cuda.set_per_process_memory_fraction(1.0)
    torch.cuda.empty_cache()


def test_full_fashion_mnist_costs_55_mb_on_the_gpu(clean_cuda: None) -> None:
    cpu = load_dataset("fashion-mnist")
    before = torch.cuda.memory_allocated()
    data = cpu.to("cuda")
    grown = torch.cuda.memory_allocated() - before
    assert data.train.x.dtype == torch.uint8 and data.train.x.is_cuda
    # 70,000 x 784 bytes of pixels (54.9 MB) + int64 labels (0.6 MB) + allocator rounding.
    assert 54e6 < grown < 58e6, grown
    # Standardized on the GPU, batch by batch: what the CPU computes, up to rounding (CUDA
    # divides by a scalar as a multiply by its reciprocal).
    index = torch.arange(0, 48000, 97)
    on_gpu = data.train.inputs(index.cuda()).cpu()
    torch.testing.assert_close(on_gpu, cpu.train.inputs(index), rtol=1e-6, atol=1e-6)


def test_fashion_mnist_trial_on_cuda_through_the_objective(tmp_path: Path, clean_cuda) -> None:
    spec = load_spec(write(tmp_path, "fm-gpu"))
    objective = Objective(spec, cuda_data(spec))
    assert objective.data.train.x.dtype == torch.uint8 and objective.data.train.x.is_cuda
    assert len(objective.data.val) == MAX_VAL
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)

    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE
    assert trial.value > 0.4  # chance is 0.1; this CNN reaches 0.55-0.65 on a CPU
    attrs = trial.user_attrs
    assert attrs["device"].startswith("cuda:")
    assert 0 < attrs["train_device_seconds"] <= attrs["train_seconds"]
    # The peak holds at least the data set (~11 MB here) and the model's working set.
    assert attrs["peak_gpu_mb"] > 10
    assert attrs["test_accuracy"] > 0.4


def test_bf16_autocast_and_channels_last(clean_cuda: None) -> None:
    data = load_dataset("fashion-mnist", max_train=MAX_TRAIN, max_val=MAX_VAL).to("cuda")
    seen: set[torch.dtype] = set()

    def record(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        seen.add(output.dtype)

    for bf16, channels_last, dtype in ((True, True, torch.bfloat16), (False, False, torch.float32)):
        torch.manual_seed(0)
        model = create_model("cnn", in_shape=data.in_shape, num_outputs=10, depth=2, width=16)
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        hook = convs[0].register_forward_hook(record)
        seen.clear()
        config = TrainConfig(epochs=2, lr=3e-3, bf16=bf16, channels_last=channels_last)
        result = train(model, data, config)
        hook.remove()
        assert seen == {dtype}
        # The second conv has 16 input channels, so its layout tells the formats apart.
        weight = convs[1].weight
        assert weight.is_contiguous(memory_format=torch.channels_last) == channels_last
        assert result.final.val_accuracy > 0.3  # chance is 0.1; 0.53-0.59 on a CPU
        assert result.device_seconds > 0
        assert 0 <= evaluate(model, data.val, bf16=bf16)[1] <= 1


def test_device_timer_uses_cuda_events() -> None:
    timer = DeviceTimer(torch.device("cuda"))
    a = torch.randn(2048, 2048, device="cuda")
    with timer.section():
        for _ in range(20):
            a = a @ a / 2048
    assert timer.seconds > 0


def test_out_of_memory_fails_only_that_trial(tmp_path: Path, clean_cuda) -> None:
    """A model too large for the worker's memory share fails with a reason; the next runs.

    The share is capped just above what the data set and CUDA's context hold, as a worker
    with a small share of a GPU would be; a CNN of width 65536 then cannot hold even the
    activations of its diagnostic batch (256 x 65536 x 28 x 28 floats, 51 GB). The memory
    estimate that refuses such trials before they allocate (hpo.training.memory) is lifted through
    max_memory_mb, so the allocation really happens and really fails.
    """
    path = write(
        tmp_path,
        "oom",
        trials=4,
        depth=1,
        width="{ choices = [32, 65536] }",
        train_extra="max_memory_mb = 1e9",
    )
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    storage = open_storage(url)
    open_study(storage, load_spec(path))

    def factory(spec: StudySpec, stop: threading.Event) -> Objective:
        objective = Objective(spec, cuda_data(spec), should_stop=stop.is_set)
        torch.cuda.empty_cache()
        total = torch.cuda.get_device_properties(0).total_memory
        share = (torch.cuda.memory_reserved() + 2 * 2**30) / total  # 2 GiB of headroom
        torch.cuda.set_per_process_memory_fraction(share)
        return objective

    report = run_worker(storage, "oom", device="cuda", objective_factory=factory)

    trials = optuna.load_study(study_name="oom", storage=url).get_trials()
    assert report.trials == 4 and len(trials) == 4
    huge = [t for t in trials if t.params["width"] == 65536]
    small = [t for t in trials if t.params["width"] == 32]
    assert huge and small, "the seeded draw should try both widths"
    for trial in huge:
        assert trial.state == TrialState.FAIL
        assert trial.user_attrs["fail_reason"].startswith("CUDA out of memory")
        assert "peak_gpu_mb" in trial.user_attrs  # attrs are written however a trial ends
    for trial in small:
        assert trial.state == TrialState.COMPLETE and trial.value > 0.25  # 0.42-0.49 on a CPU


def test_objective_data_shared_by_trials_is_never_modified(tmp_path: Path, clean_cuda) -> None:
    spec = load_spec(write(tmp_path, "twice", trials=2))
    data = cuda_data(spec)
    pixels = data.train.x.clone()
    study = optuna.create_study(direction="maximize")
    study.optimize(Objective(spec, data), n_trials=2)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert torch.equal(data.train.x, pixels)
