"""Search-space entries become Optuna suggestions; fixed values pass through unsampled."""

from __future__ import annotations

import optuna
import pytest

from hpo.config.space import CategoricalParam, FixedParam, FloatParam, IntParam
from hpo.study.space import split_params, suggest_params, to_distribution

SPACE = {
    "depth": IntParam(1, 4),
    "width": IntParam(8, 64, log=True),
    "lr": FloatParam(1e-4, 1e-1, log=True),
    "dropout": FloatParam(0.0, 0.5, step=0.1),
    "activation": CategoricalParam(("relu", "tanh")),
    "batch_size": FixedParam(64),
}


def test_suggestions_stay_in_their_ranges_and_fixed_values_are_not_params() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        params = suggest_params(trial, SPACE)
        assert 1 <= params["depth"] <= 4 and isinstance(params["depth"], int)
        assert 8 <= params["width"] <= 64
        assert 1e-4 <= params["lr"] <= 1e-1
        assert round(params["dropout"] * 10, 6) == round(params["dropout"] * 10)
        assert params["activation"] in ("relu", "tanh")
        assert params["batch_size"] == 64
        assert "batch_size" not in trial.params  # the sampler models only what varies
        study.tell(trial, 0.0)


def test_distributions_match_the_declaration() -> None:
    assert to_distribution(SPACE["width"]) == optuna.distributions.IntDistribution(8, 64, log=True)
    assert to_distribution(SPACE["lr"]) == optuna.distributions.FloatDistribution(
        1e-4, 1e-1, log=True
    )
    assert to_distribution(SPACE["activation"]) == optuna.distributions.CategoricalDistribution(
        ("relu", "tanh")
    )


def test_split_params_separates_model_and_training_keys() -> None:
    model, training = split_params({"depth": 2, "activation": "relu", "lr": 0.1, "batch_size": 8})
    assert model == {"depth": 2, "activation": "relu"}
    assert training == {"lr": 0.1, "batch_size": 8}


def test_split_params_sends_pool_and_kernel_to_the_model_and_techniques_to_training() -> None:
    params = {"pool": "avg", "kernel": 5, "schedule": "cosine", "warmup_epochs": 1}
    params |= {"augment": "crop_flip", "l1": 1e-4, "patience": 3}
    model, training = split_params(params)
    assert model == {"pool": "avg", "kernel": 5}
    assert training == {
        "schedule": "cosine",
        "warmup_epochs": 1,
        "augment": "crop_flip",
        "l1": 1e-4,
        "patience": 3,
    }
    from hpo.training.loop import TrainConfig

    assert TrainConfig(**training).patience == 3  # every training key is a TrainConfig field


def test_a_log_range_from_a_study_file_is_searched_on_a_log_scale() -> None:
    """lr = { low = 1e-5, high = 1e-1, log = true }: the median draw sits near 1e-3, the
    middle of the decades; on a linear scale it would sit near 0.05 (log10: -1.3)."""
    import math
    import statistics

    from hpo.config.spec import parse_spec

    raw = {
        "study": {"name": "s"},
        "model": {"name": "mlp"},
        "space": {"lr": {"low": 1e-5, "high": 1e-1, "log": True}},
    }
    space = parse_spec(raw, source="s.toml").space
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    draws = [suggest_params(study.ask(), space)["lr"] for _ in range(400)]
    assert all(1e-5 <= lr <= 1e-1 for lr in draws)
    assert statistics.median(math.log10(lr) for lr in draws) == pytest.approx(-3, abs=0.3)


# Found by mutation testing (mutmut over hpo/study/space.py): steps and log scales of the
# declaration reaching Optuna, and the stored param names, were not all pinned.


def test_every_declared_step_and_scale_reaches_the_trials_distributions() -> None:
    space = {
        "width": IntParam(8, 64, step=8),
        "depth": IntParam(1, 16, log=True),
        "dropout": FloatParam(0.0, 0.5, step=0.1),
        "activation": CategoricalParam(("relu", "tanh")),
    }
    for name, param in space.items():
        assert (
            to_distribution(param)
            == {
                "width": optuna.distributions.IntDistribution(8, 64, step=8),
                "depth": optuna.distributions.IntDistribution(1, 16, log=True),
                "dropout": optuna.distributions.FloatDistribution(0.0, 0.5, step=0.1),
                "activation": optuna.distributions.CategoricalDistribution(("relu", "tanh")),
            }[name]
        )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    params = suggest_params(trial, space)
    assert trial.distributions == {name: to_distribution(p) for name, p in space.items()}
    assert set(trial.params) == set(space) and params["width"] % 8 == 0
