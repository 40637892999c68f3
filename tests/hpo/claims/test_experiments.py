"""hpo.claims.experiments and the model building of hpo.claims.run: every run of every
claim is a valid configuration, builds, and takes a training step."""

from __future__ import annotations

import functools

import optuna
import pytest
import torch

from hpo.claims.experiments import MAX_SEEDS, SIZES, check_options, claim_names, claims, study_name
from hpo.claims.run import build_model, distributions
from hpo.errors import HpoError
from hpo.training.data import Dataset, load_dataset
from hpo.training.loop import TrainConfig, loss_and_correct, make_optimizer

VARIANTS = [
    (size, c.name, k) for size in SIZES for c in claims(size) for k in range(len(c.variants))
]


@functools.cache
def data(name: str, max_train: int | None) -> Dataset:
    return load_dataset(name, seed=0, max_train=max_train)


def test_five_claims_in_report_order() -> None:
    assert claim_names() == [
        "rings-batchnorm",
        "vanishing-gradients",
        "initialisation",
        "batchnorm-lr",
        "dropout",
    ]
    assert study_name("dropout", "full") == "claims-dropout"
    assert study_name("dropout", "quick") == "claims-quick-dropout"


@pytest.mark.parametrize("size", SIZES)
def test_run_keys_are_unique_and_name_the_varied_values(size: str) -> None:
    for c in claims(size):
        runs = c.runs(3)
        assert len({r.key for r in runs}) == len(runs) == 3 * len(c.variants)
        assert all(set(r.params) == {*c.axes, "seed"} for r in runs)
        assert all(r.config["seed"] == r.params["seed"] for r in runs)
        dists = distributions(c)
        for r in runs:  # Optuna accepts every run's params with these distributions
            optuna.trial.create_trial(params=r.params, distributions=dists, value=0.5)


def test_the_rings_network_is_the_lectures() -> None:
    [rings] = [c for c in claims() if c.name == "rings-batchnorm"]
    assert {v["batchnorm"] for v in rings.variants} == {False, True}
    model = build_model(rings.variants[0], data("rings", None))
    shapes = [tuple(p.shape) for n, p in model.named_parameters() if n.endswith("weight")]
    assert shapes == [(32, 2), (32, 32), (16, 32), (1, 16)]


@pytest.mark.parametrize(("size", "name", "k"), VARIANTS)
def test_every_variant_builds_and_trains_a_step(size: str, name: str, k: int) -> None:
    [c] = [c for c in claims(size) if c.name == name]
    config = c.variants[k]
    split = data(config["data"], config["max_train"])
    torch.manual_seed(0)
    model = build_model(config, split)
    train = TrainConfig(optimizer=config["optimizer"], lr=config["lr"], momentum=config["momentum"])
    optimizer = make_optimizer(model, train)
    x, y = split.train.batch(slice(0, config["batch_size"]))
    before = [p.detach().clone() for p in model.parameters()]
    loss, _ = loss_and_correct(model(x), y)
    loss.backward()
    optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize(
    ("size", "seeds", "message"),
    [
        ("huge", 3, "unknown size 'huge'; choose one of: full, quick"),
        ("full", 0, f"--seeds must be between 1 and {MAX_SEEDS}, got 0"),
        ("full", MAX_SEEDS + 1, f"--seeds must be between 1 and {MAX_SEEDS}"),
    ],
)
def test_bad_options_are_refused(size: str, seeds: int, message: str) -> None:
    with pytest.raises(HpoError, match=message):
        check_options(size, seeds)
