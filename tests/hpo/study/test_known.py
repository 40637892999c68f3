"""Known configurations ([[enqueue]], `hpo enqueue`): checked against the space, run first,
within the budget, never queued twice; on SQLite, PostgreSQL and behind the proxy."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from hpo.config.spec import StudySpec, load_spec
from hpo.errors import HpoError, SpecError
from hpo.runtime.worker import run_worker
from hpo.storage.open import open_storage
from hpo.study.create import QUEUE_DEPTH, enqueue, open_study
from hpo.study.known import config_key
from hpo.study.records import KNOWN_ATTR
from hpo.study.space import suggest_params
from tests.helpers import (
    HpoProcesses,
    assert_budget_accounted,
    run_hpo,
    run_main,
    serving_proxy,
    wait_for,
    with_enqueue,
    worker_settings,
)

LR_DEPTH = {"lr": 0.01, "depth": 2}
TANH = {"activation": "tanh"}  # partial: the sampler draws depth, width and lr


def fixed_params(study: optuna.Study) -> list[dict[str, Any] | None]:
    return [t.system_attrs.get("fixed_params") for t in study.get_trials()]


def lr_objective(spec: StudySpec, _stop: threading.Event) -> Callable[[optuna.Trial], float]:
    """An objective_factory that trains nothing: the trial's lr is its value."""
    return lambda trial: suggest_params(trial, spec.space)["lr"]


def test_known_configurations_take_the_first_trials_and_a_relaunch_adds_only_new_ones(
    sqlite_url: str, write_study: Callable[..., Path]
) -> None:
    path = with_enqueue(write_study("known", trials=5), LR_DEPTH, TANH)
    storage = open_storage(sqlite_url)
    study = open_study(storage, load_spec(path))
    assert fixed_params(study) == [LR_DEPTH, TANH, None, None, None]

    open_study(storage, load_spec(path))  # the same launch again: nothing new
    assert fixed_params(study) == [LR_DEPTH, TANH, None, None, None]
    # One more table: it takes a queued trial's place, so the budget holds.
    open_study(storage, load_spec(with_enqueue(path, {"lr": 0.05})))
    assert fixed_params(study) == [LR_DEPTH, TANH, {"lr": 0.05}, None, None]
    known = study.user_attrs[KNOWN_ATTR]
    assert known == {"keys": [config_key(c) for c in (LR_DEPTH, TANH, {"lr": 0.05})], "pending": []}


def test_known_configurations_beyond_the_budget_wait_for_a_larger_one(
    sqlite_url: str, write_study: Callable[..., Path]
) -> None:
    path = with_enqueue(write_study("over", trials=2), LR_DEPTH, TANH, {"lr": 0.05})
    storage = open_storage(sqlite_url)
    heard: list[int] = []
    study = open_study(storage, load_spec(path), on_pending=heard.append)
    assert (fixed_params(study), heard) == ([LR_DEPTH, TANH], [1])
    assert study.user_attrs[KNOWN_ATTR]["pending"] == [{"lr": 0.05}]

    open_study(storage, load_spec(path), trials=4, on_pending=heard.append)
    assert fixed_params(study) == [LR_DEPTH, TANH, {"lr": 0.05}, None]
    assert (study.user_attrs[KNOWN_ATTR]["pending"], heard) == ([], [1])


def test_more_known_configurations_than_the_queue_holds_all_run_first(
    sqlite_url: str, write_study: Callable[..., Path]
) -> None:
    configs = [{"lr": round(0.001 * (n + 1), 6)} for n in range(QUEUE_DEPTH + 4)]
    path = with_enqueue(write_study("many", trials=len(configs) + 3), *configs)
    storage = open_storage(sqlite_url)
    study = open_study(storage, load_spec(path))
    assert fixed_params(study) == configs[:QUEUE_DEPTH]  # the rest wait for a top-up
    run_worker(storage, "many", objective_factory=lr_objective)

    trials = assert_budget_accounted(study, len(configs) + 3)
    assert [t.params["lr"] for t in trials[: len(configs)]] == [c["lr"] for c in configs]
    assert study.user_attrs[KNOWN_ATTR]["pending"] == []


BAD_PARAMS = {
    "outside the range": (
        {"lr": 5},
        "--params: #2: lr: 5 is outside the searched range [0.001, 0.1]",
    ),
    "not a choice": ({"activation": "gelu"}, "activation: 'gelu' is not one of the choices"),
    "not searched here": ({"momentum": 0.9}, "momentum: not in this study's [space]"),
    "unknown key": ({"lrr": 0.01}, "unknown hyperparameter 'lrr' (did you mean 'lr'?)"),
    "a fixed value changed": ({"batch_size": 32}, "batch_size is fixed at 64 in this study"),
    "off the integer grid": ({"depth": 1.5}, "depth: 1.5 must be an integer"),
    "a boolean for a number": ({"width": True}, "width: True must be an integer"),
    "empty": ({}, "must be a table of hyperparameter values"),
    "not a table": ([0.01], "must be a table of hyperparameter values"),
}


@pytest.mark.parametrize("params, message", BAD_PARAMS.values(), ids=BAD_PARAMS.keys())
def test_enqueue_refuses_what_the_space_cannot_yield_and_writes_nothing(
    params: Any, message: str, sqlite_url: str, create_study: Callable[..., optuna.Study]
) -> None:
    study = create_study(sqlite_url, "bad", trials=3)
    before = (study.user_attrs, fixed_params(study))
    with pytest.raises(SpecError) as refused:
        enqueue(open_storage(sqlite_url), "bad", [{"lr": 0.02}, params])  # the first is fine
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert (study.user_attrs, fixed_params(study)) == before


def test_enqueue_through_the_proxy_runs_under_the_lock_there(
    postgres_url: str, write_study: Callable[..., Path]
) -> None:
    with serving_proxy(postgres_url) as url:
        proxy = open_storage(url)
        study = open_study(proxy, load_spec(with_enqueue(write_study("px", trials=4), TANH)))
        answer = enqueue(proxy, "px", [{"lr": 0.05}, TANH])  # TANH came with the file
        assert answer == {"added": 1, "waiting": 0, "queued": 4, "stopped": ""}
        with pytest.raises(HpoError, match=r"^--params: lr: 5 is outside"):
            enqueue(proxy, "px", [{"lr": 5}])
        known, others = proxy.waiting_trial_ids(study._study_id)
        assert (len(known), len(others)) == (2, 2)
    assert fixed_params(optuna.load_study(study_name="px", storage=postgres_url)) == [
        TANH,
        {"lr": 0.05},
        None,
        None,
    ]


def test_hpo_enqueue_on_a_created_study_and_its_one_line_errors(
    tmp_path: Path, write_study: Callable[..., Path], sqlite_url: str
) -> None:
    path = write_study("cli", trials=3)
    env = {"HPO_STORAGE": sqlite_url}
    assert run_main("launch", "study", str(path), "--workers", "0", env=env)[0] == 0
    code, out, _ = run_main("enqueue", "cli", "--params", '{"lr": 0.02, "depth": 1}', env=env)
    assert (code, out.splitlines()[0]) == (0, "study cli: 1 configuration(s) enqueued")
    again = run_main("enqueue", "cli", "--params", '{"depth": 1, "lr": 0.02}', env=env)
    assert again[1].startswith("study cli: 0 configuration(s) enqueued, 1 enqueued before")
    study = optuna.load_study(study_name="cli", storage=sqlite_url)
    assert fixed_params(study) == [{"depth": 1, "lr": 0.02}, None, None]

    for args, message in [
        (["cli", "--params", '{"lr": 0.02'], "--params '{\"lr\": 0.02' is not JSON"),
        (["cli", "--params", '{"lr": 0.5}'], "--params: lr: 0.5 is outside the searched range"),
        (["ghost", "--params", '{"lr": 0.02}'], "no hpo study named 'ghost'"),
        (["cli"], "Missing option '--params'"),
    ]:
        code, _, err = run_main("enqueue", *args, env=env)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert fixed_params(study) == [{"depth": 1, "lr": 0.02}, None, None]


@pytest.mark.slow
@pytest.mark.parametrize("url_fixture", ["sqlite_url", "postgres_url"])
def test_enqueued_configs_run_first_and_the_budget_stays_exact_with_three_workers(
    tmp_path: Path,
    write_study: Callable[..., Path],
    url_fixture: str,
    request: pytest.FixtureRequest,
) -> None:
    url = request.getfixturevalue(url_fixture)
    configs = [LR_DEPTH, TANH, {"lr": 0.05, "width": 9}, {"depth": 1, "activation": "relu"}]
    path = with_enqueue(write_study("first", trials=7, epochs=1), *configs)
    launch = ("launch", "study", str(path), "--workers", "3")
    result = run_hpo(*launch, env=worker_settings(url), cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    study = optuna.load_study(study_name="first", storage=url)
    trials = assert_budget_accounted(study, 7)
    known, others = trials[: len(configs)], trials[len(configs) :]
    for trial, config in zip(known, configs, strict=True):
        assert trial.params.items() >= config.items(), (trial.params, config)
    assert max(t.datetime_start for t in known) <= min(t.datetime_start for t in others)

    # The same launch again queues nothing twice; a larger budget adds plain trials.
    env = {"HPO_STORAGE": url}
    assert run_main("launch", "study", str(path), "--workers", "0", env=env)[0] == 0
    assert len(study.get_trials()) == 7
    code, _, err = run_main("launch", "study", str(path), "--trials", "9", env=env)
    assert code == 0, err
    trials = assert_budget_accounted(study, 9)
    assert [t.system_attrs.get("fixed_params") for t in trials[7:]] == [None, None]


@pytest.mark.slow
@pytest.mark.parametrize("url_fixture", ["sqlite_url", "postgres_url"])
def test_hpo_enqueue_on_a_running_study_runs_next_within_the_budget(
    tmp_path: Path,
    write_study: Callable[..., Path],
    url_fixture: str,
    request: pytest.FixtureRequest,
) -> None:
    url = request.getfixturevalue(url_fixture)
    path = write_study("running", trials=6, epochs=40)  # a second or more per trial
    config = {"lr": 0.02, "depth": 1}
    env = {"HPO_STORAGE": url}

    def running() -> list[optuna.trial.FrozenTrial] | None:
        try:
            study = optuna.load_study(study_name="running", storage=url)
        except KeyError:  # not created yet
            return None
        return study.get_trials(states=(TrialState.RUNNING,))

    with HpoProcesses() as processes:
        launcher = processes.start(
            "launch", "study", str(path), "--workers", "2", env=worker_settings(url), cwd=tmp_path
        )
        wait_for(running, "a running trial")
        code, out, err = run_main(
            "enqueue", "running", "--params", '{"lr": 0.02, "depth": 1}', env=env
        )
        enqueued_at = datetime.datetime.now()
        assert (code, "1 configuration(s) enqueued" in out) == (0, True), err
        code, _, err = run_main("enqueue", "running", "--params", '{"lr": 5}', env=env)
        assert code == 2 and "lr: 5 is outside" in err and len(err.strip().splitlines()) == 1
        [result] = processes.finish()
    assert launcher.returncode == 0, result.stderr

    trials = assert_budget_accounted(optuna.load_study(study_name="running", storage=url), 6)
    [known] = [t for t in trials if t.system_attrs.get("fixed_params") == config]
    assert known.params.items() >= config.items()
    later = [t for t in trials if t.datetime_start >= enqueued_at]
    assert all(known.datetime_start <= t.datetime_start for t in later)
