"""Samplers and pruners by name, with hpo's defaults; the seeds of parallel workers."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from hpo.config.rules import MAX_SEED
from hpo.config.vocabulary import PRUNERS, SAMPLERS
from hpo.study.samplers import WORKER_SEED_STRIDE, build_pruner, build_sampler, worker_seed
from tests.helpers import assert_usage_error, option_defaults, run_hpo, run_main, study_text

# QMC and GP are experimental in Optuna: building them warns, which is not under test here.
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

SAMPLER_CLASSES = {
    "random": optuna.samplers.RandomSampler,
    "tpe": optuna.samplers.TPESampler,
    "qmc": optuna.samplers.QMCSampler,
    "gp": optuna.samplers.GPSampler,
    "nsga2": optuna.samplers.NSGAIISampler,
}
PRUNER_CLASSES = {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "sha": optuna.pruners.SuccessiveHalvingPruner,
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
    assert_usage_error(result, "[sampler] options.qmc_type: 'x' is not allowed")
    assert not (tmp_path / "q.db").exists()


def _spec_with(section: str, name: str, options: dict[str, Any], *, epochs: int = 3):
    """A parsed tiny spec whose [sampler] or [pruner] is `name` with `options`."""
    import tomllib

    from hpo.config.spec import parse_spec

    text = study_text("o", "depth = 1", epochs=epochs)
    raw = tomllib.loads(text)
    raw[section] = {"name": name, "options": options}
    return parse_spec(raw, source="o.toml")


# (section, name, options, what the one line says). The first five were accepted, and every
# trial then failed with a TypeError or ZeroDivisionError traceback as its reason.
BAD_OPTIONS = {
    "tpe gamma": (
        "sampler",
        "tpe",
        {"gamma": 5},
        "[sampler] options.gamma: takes a Python object (Callable[[int], int] | None), which a "
        "study file cannot express; leave it out",
    ),
    "tpe n_startup_trials 'x'": (
        "sampler",
        "tpe",
        {"n_startup_trials": "x"},
        "[sampler] options.n_startup_trials: 'x' is not allowed; it must be an integer in [0, ",
    ),
    "tpe n_ei_candidates -3": (
        "sampler",
        "tpe",
        {"n_ei_candidates": -3},
        "[sampler] options.n_ei_candidates: -3 is not allowed; it must be an integer in [1, ",
    ),
    "hyperband reduction_factor 1": (
        "pruner",
        "hyperband",
        {"reduction_factor": 1},
        "[pruner] options.reduction_factor: 1 is not allowed; it must be an integer in [2, ",
    ),
    "hyperband min_resource 'x'": (
        "pruner",
        "hyperband",
        {"min_resource": "x"},
        "[pruner] options.min_resource: 'x' is not allowed; it must be an integer in [1, ",
    ),
    "hyperband min_resource above the epochs": (
        "pruner",
        "hyperband",
        {"min_resource": 5},
        "[pruner] options.min_resource: 5 is above max_resource 3 (the epoch budget",
    ),
    "median n_warmup_steps -1": (
        "pruner",
        "median",
        {"n_warmup_steps": -1},
        "[pruner] options.n_warmup_steps: -1 is not allowed; it must be an integer in [0, ",
    ),
    "median interval_steps 0": (
        "pruner",
        "median",
        {"interval_steps": 0},
        "[pruner] options.interval_steps: 0 is not allowed; it must be an integer in [1, ",
    ),
    "median n_startup_trials true": (
        "pruner",
        "median",
        {"n_startup_trials": True},
        "[pruner] options.n_startup_trials: True is not allowed",
    ),
    "tpe prior_weight nan": (
        "sampler",
        "tpe",
        {"prior_weight": float("nan")},
        "[sampler] options.prior_weight: nan is not allowed; it must be a finite number > 0",
    ),
    "tpe prior_weight past any float": (
        "sampler",
        "tpe",
        {"prior_weight": 10**400},
        "[sampler] options.prior_weight: 1000",
    ),
    "tpe constant_liar 1 (a type from the annotation)": (
        "sampler",
        "tpe",
        {"constant_liar": 1},
        "[sampler] options.constant_liar: 1 is not allowed; it must be true or false",
    ),
    "gp independent_sampler (a Python object)": (
        "sampler",
        "gp",
        {"independent_sampler": "random"},
        "[sampler] options.independent_sampler: takes a Python object (BaseSampler | None)",
    ),
    "qmc qmc_type": (
        "sampler",
        "qmc",
        {"qmc_type": "x"},
        "[sampler] options.qmc_type: 'x' is not allowed; it must be 'halton' or 'sobol'",
    ),
    "nsga2 population of one": (
        "sampler",
        "nsga2",
        {"population_size": 1},
        "[sampler] options.population_size: 1 is not allowed; it must be an integer in [2, ",
    ),
    "nsga2 crossover_prob above one": (
        "sampler",
        "nsga2",
        {"crossover_prob": 1.5},
        "[sampler] options.crossover_prob: 1.5 is not allowed; it must be a probability in [0, 1]",
    ),
    "unknown tpe option": (
        "sampler",
        "tpe",
        {"n_ei_candidate": 3},
        "[sampler] options.n_ei_candidate: the tpe sampler has no option 'n_ei_candidate' (did "
        "you mean 'n_ei_candidates'?); accepted: consider_endpoints, consider_magic_clip",
    ),
    "random takes none": (
        "sampler",
        "random",
        {"n_startup_trials": 3},
        "[sampler] options.n_startup_trials: the random sampler takes no options",
    ),
    "tpe group without multivariate (built to see)": (
        "sampler",
        "tpe",
        {"group": True, "multivariate": False},
        "[sampler] options: not accepted by the tpe sampler: ``group`` option can only be",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_each_bad_option_is_refused_naming_it_and_what_is_allowed(case: str) -> None:
    from hpo.errors import SpecError
    from hpo.study.samplers import check_options

    section, name, options, message = BAD_OPTIONS[case]
    spec = _spec_with(section, name, options)
    with pytest.raises(SpecError) as refused:
        check_options(spec, source="o.toml")
    assert str(refused.value).startswith(f"o.toml: {message}"), str(refused.value)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("section", "name"), [("sampler", n) for n in SAMPLERS] + [("pruner", n) for n in PRUNERS]
)
def test_every_option_at_optunas_own_default_is_accepted(section: str, name: str) -> None:
    """The rules refuse bad values, never what Optuna itself would use."""
    from hpo.study.samplers import check_options

    defaults = option_defaults(section, name)
    if section == "pruner" and name == "hyperband":
        defaults["max_resource"] = 3  # 'auto' and a bootstrap_count > 0 exclude each other
    for key, value in defaults.items():
        check_options(_spec_with(section, name, {key: value}), source="o.toml")
    check_options(_spec_with(section, name, defaults), source="o.toml")


def test_a_bad_option_in_a_study_file_is_one_line_and_writes_nothing(tmp_path) -> None:
    file = tmp_path / "g.toml"
    file.write_text(
        study_text("g", "depth = 1", sampler="tpe").replace(
            "seed = 0", "seed = 0\noptions = { gamma = 5 }"
        )
    )
    code, out, err = run_main(
        "--storage",
        f"sqlite:///{tmp_path / 'g.db'}",
        "launch",
        "study",
        str(file),
        "--workers",
        "0",
    )
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {file}: [sampler] options.gamma: takes a Python object")
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "g.db").exists()


def test_a_bad_option_edited_into_the_stored_spec_stops_the_worker_in_one_line(
    sqlite_url, create_study
) -> None:
    """Was: `hpo worker` exited 0 with every trial failed (ZeroDivisionError)."""
    from optuna.trial import TrialState

    from hpo.study.records import SPEC_ATTR

    study = create_study(sqlite_url, "edited", pruner="hyperband")
    spec = study.user_attrs[SPEC_ATTR]
    spec["pruner"]["options"] = {"reduction_factor": 1}
    study.set_user_attr(SPEC_ATTR, spec)

    code, _, err = run_main("--storage", sqlite_url, "worker", "--study", "edited")

    assert code == 2
    assert err.startswith(
        "error: spec stored with study 'edited': [pruner] options.reduction_factor: 1 is not "
        "allowed; it must be an integer in [2, "
    ), err
    assert len(err.strip().splitlines()) == 1
    assert {t.state for t in study.get_trials()} == {TrialState.WAITING}
