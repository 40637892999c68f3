"""A data set larger than the device's share stays on the host and goes to the device batch
by batch (Split.target): the same batches, the same training, never out of memory."""

from __future__ import annotations

import torch

from hpo.training.data import load_dataset
from hpo.training.loop import TrainConfig, train
from hpo.training.memory import device_data_bytes
from models import create_model


def test_a_data_set_over_the_budget_stays_on_the_host_and_trains_the_same() -> None:
    data = load_dataset("digits", seed=0, max_train=200, max_val=60)
    resident = data.to("cpu")
    streamed = data.to("cpu", max_device_bytes=data.nbytes - 1)
    assert resident.train.target is None
    assert streamed.train.target == torch.device("cpu") and streamed.test.target is not None
    assert data.to("cpu", max_device_bytes=data.nbytes).train.target is None  # it fits
    index = torch.tensor([5, 0, 17])
    for a, b in zip(resident.train.batch(index), streamed.train.batch(index), strict=True):
        assert torch.equal(a, b)
    results = []
    for split_data in (resident, streamed):
        torch.manual_seed(0)
        model = create_model("cnn", in_shape=data.in_shape, num_outputs=10, depth=1, width=4)
        config = TrainConfig(epochs=1, lr=1e-2, batch_size=32, augment="crop_flip", seed=3)
        results.append(train(model, split_data, config).final)
    assert abs(results[0].val_loss - results[1].val_loss) < 1e-6
    assert results[0].val_accuracy == results[1].val_accuracy


def test_the_cpu_sets_no_device_budget() -> None:
    assert device_data_bytes("cpu") is None  # host memory holds the data either way
