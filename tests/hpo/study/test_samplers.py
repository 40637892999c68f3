"""Samplers and pruners by name, with hpo's defaults; the seeds of parallel workers."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from hpo.config.spec import MAX_SEED
from hpo.config.vocabulary import PRUNERS, SAMPLERS
from hpo.study.samplers import WORKER_SEED_STRIDE, build_pruner, build_sampler, worker_seed
from tests.helpers import assert_usage_error, run_hpo, study_text

# QMC and GP are experimental in Optuna: building them warns, which is not under test here.
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

SAMPLER_CLASSES = {
    "random": optuna.samplers.RandomSampler,
    "tpe": optuna.samplers.TPESampler,
    "qmc": optuna.samplers.QMCSampler,
    "gp": optuna.samplers.GPSampler,
}
PRUNER_CLASSES = {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
}


def _spy(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[dict[str, Any]]:
    """Record the keyword arguments that each construction of `module.name` receives."""
    real = getattr(module, name)
    calls: list[dict[str, Any]] = []

    def build(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(module, name, build)
    return calls


def test_every_name_is_known() -> None:
    assert set(SAMPLER_CLASSES) == set(SAMPLERS)
    assert set(PRUNER_CLASSES) == set(PRUNERS)


@pytest.mark.parametrize("name", SAMPLERS)
def test_each_sampler_name_builds_its_class_with_the_seed(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _spy(monkeypatch, optuna.samplers, SAMPLER_CLASSES[name].__name__)
    assert isinstance(build_sampler(name, seed=7), SAMPLER_CLASSES[name])
    assert [call["seed"] for call in calls] == [7]


@pytest.mark.parametrize("name", PRUNERS)
def test_each_pruner_name_builds_its_class(name: str) -> None:
    assert isinstance(build_pruner(name, max_epochs=9), PRUNER_CLASSES[name])


@pytest.mark.parametrize(
    "options, expected",
    [
        ({}, {"seed": 3, "constant_liar": True, "multivariate": True}),
        (
            {"constant_liar": False, "n_startup_trials": 2},
            {"seed": 3, "constant_liar": False, "multivariate": True, "n_startup_trials": 2},
        ),
    ],
)
def test_tpe_spreads_parallel_workers_unless_told_otherwise(
    options: dict[str, Any], expected: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _spy(monkeypatch, optuna.samplers, "TPESampler")
    build_sampler("tpe", seed=3, options=options)
    assert calls == [expected]


@pytest.mark.parametrize(
    "name, options, expected",
    [
        ("median", {}, {"n_startup_trials": 5, "n_warmup_steps": 1}),
        ("median", {"n_warmup_steps": 3}, {"n_startup_trials": 5, "n_warmup_steps": 3}),
        ("hyperband", {}, {"min_resource": 1, "max_resource": 12}),
        (
            "hyperband",
            {"max_resource": 4, "reduction_factor": 2},
            {"min_resource": 1, "max_resource": 4, "reduction_factor": 2},
        ),
    ],
)
def test_pruner_defaults_follow_the_epoch_budget_and_options_override_them(
    name: str, options: dict[str, Any], expected: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _spy(monkeypatch, optuna.pruners, PRUNER_CLASSES[name].__name__)
    build_pruner(name, max_epochs=12, options=options)
    assert calls == [expected]


def test_unknown_names_are_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown sampler 'cmaes'; choose one of: random, tpe"):
        build_sampler("cmaes", seed=0)
    with pytest.raises(ValueError, match="unknown pruner 'asha'; choose one of: none, median"):
        build_pruner("asha", max_epochs=5)


def test_bad_options_are_refused() -> None:
    with pytest.raises(TypeError, match="n_bogus"):
        build_sampler("random", seed=0, options={"n_bogus": 1})
    with pytest.raises(TypeError, match="n_bogus"):
        build_pruner("median", max_epochs=5, options={"n_bogus": 1})
    with pytest.raises(TypeError, match="pruner 'none' takes no options"):
        build_pruner("none", max_epochs=5, options={"n_warmup_steps": 1})


def test_worker_seeds_are_distinct_across_workers_and_studies() -> None:
    seeds = [worker_seed(study_seed, worker) for study_seed in range(10) for worker in range(50)]
    assert len(set(seeds)) == len(seeds)


def _draws(seed: int) -> list[float]:
    """What a random sampler seeded `seed` proposes for five trials."""
    study = optuna.create_study(sampler=build_sampler("random", seed=seed))
    return [study.ask().suggest_float("x", 0.0, 1.0) for _ in range(5)]


def test_a_worker_draws_the_same_points_again_and_other_workers_others() -> None:
    first = _draws(worker_seed(0, 1))
    assert _draws(worker_seed(0, 1)) == first
    assert _draws(worker_seed(0, 2)) != first
    assert _draws(worker_seed(1, 1)) != first


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("index", [1, 100_000, 10**9], ids=["first", "largest default", "huge"])
def test_the_largest_study_seed_builds_a_sampler_for_any_worker(name: str, index: int) -> None:
    seed = worker_seed(MAX_SEED, index)
    assert 0 <= seed < 2**32
    if index <= 100_000:  # the largest default index (runtime.launch) needs no wrap
        assert seed == MAX_SEED + WORKER_SEED_STRIDE * index
    build_sampler(name, seed=seed)


def test_an_experimental_samplers_bad_option_is_one_line_without_warnings(tmp_path) -> None:
    """Was: two ExperimentalWarning lines (qmc, gp) printed before the error line."""
    file = tmp_path / "q.toml"
    file.write_text(study_text("q", "depth = 1", sampler="qmc"))
    file.write_text(file.read_text().replace("seed = 0", 'seed = 0\noptions = { qmc_type = "x" }'))
    result = run_hpo("--storage", f"sqlite:///{tmp_path / 'q.db'}", "launch", "study", str(file))
    assert_usage_error(result, "sampler.options: not accepted by the qmc sampler")
    assert not (tmp_path / "q.db").exists()
