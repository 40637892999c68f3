"""The model file: plain tensors read with weights_only, rebuilt to take raw inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hpo.errors import HpoError
from hpo.training.data import load_dataset, make_rings
from hpo.training.loop import evaluate
from hpo.training.modelfile import model_record, read_model, rebuild, save_model, wrap
from models import create_model


def test_a_rings_model_takes_raw_points_and_answers_two_scores(tmp_path: Path) -> None:
    data = load_dataset("rings", max_train=200)
    torch.manual_seed(0)
    net = create_model("mlp", in_shape=data.in_shape, num_outputs=1, depth=1, width=8)
    path = tmp_path / "model.pt"
    record = model_record(
        model="mlp", params={"width": 8}, model_params={"depth": 1, "width": 8}, data=data, seed=0
    )
    save_model(path, wrap(net, data), record)

    model = rebuild(*read_model(path))

    assert not model.training
    raw, labels = map(torch.as_tensor, make_rings())  # every point, in the data's own units
    scores = model(raw)
    assert scores.shape == (len(raw), 2)
    # The same decisions as training's one logit on standardized inputs.
    inputs = (raw - data.features.mean) / data.features.std
    assert torch.equal(scores.argmax(1), (net(inputs)[:, 0] > 0).long())
    _, accuracy = evaluate(net, data.test)
    assert 0 <= accuracy <= 1 and labels.max() == 1


def test_something_else_is_refused_in_one_line(tmp_path: Path) -> None:
    pickled = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)  # a pickle of code: weights_only refuses it
    with pytest.raises(HpoError, match="not an hpo model file"):
        read_model(pickled)
    with pytest.raises(HpoError, match="no such model file"):
        read_model(tmp_path / "missing.pt")
    other = tmp_path / "other.pt"
    torch.save({"format": 99, "record": "{}", "state_dict": {}}, other)
    with pytest.raises(HpoError, match="format 99"):
        read_model(other)
