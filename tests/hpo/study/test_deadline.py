"""`[study] timeout`: one deadline for the whole study, stored with it, obeyed by every worker."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo.config.spec import StudySpec, load_spec
from hpo.errors import HpoError
from hpo.runtime.worker import WorkerReport, run_worker
from hpo.storage.open import open_storage
from hpo.study.create import open_study
from hpo.study.records import DEADLINE_ATTR, SPEC_ATTR, budget_of
from tests.helpers import WAIT_SECONDS, run_hpo, wait_for, worker_settings, zero_cost

TRIAL_SECONDS = 0.5  # each zero-cost trial sleeps this long, so a deadline cuts the budget


def _spec(write_study: Callable[..., Path], timeout: float | None, trials: int = 40) -> StudySpec:
    spec = load_spec(write_study("deadline", trials=trials))
    return dataclasses.replace(spec, timeout=timeout)


def _start_worker(
    storage: object, name: str, index: int, reports: list[WorkerReport]
) -> threading.Thread:
    """A slow zero-cost worker in a thread, its report appended to `reports` at the end."""
    thread = threading.Thread(
        target=lambda: reports.append(
            run_worker(
                storage,
                name,
                worker_index=index,
                objective_factory=zero_cost(sleep=TRIAL_SECONDS),
            )
        )
    )
    thread.start()
    return thread


def _completed(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def test_creating_a_study_stores_its_deadline(sqlite_url, write_study) -> None:
    storage = open_storage(sqlite_url)
    before = time.time()
    study = open_study(storage, _spec(write_study, timeout=60))
    after = time.time()
    assert before + 60 <= study.user_attrs[DEADLINE_ATTR] <= after + 60


def test_a_study_without_timeout_has_no_deadline(sqlite_url, write_study) -> None:
    study = open_study(open_storage(sqlite_url), _spec(write_study, timeout=None, trials=2))
    assert DEADLINE_ATTR not in study.user_attrs
    report = run_worker(open_storage(sqlite_url), study.study_name, objective_factory=zero_cost())
    assert report.trials == 2


def test_workers_started_apart_stop_at_the_deadline_and_the_budget_holds(
    sqlite_url, write_study
) -> None:
    """Both workers end by the deadline, not by the budget; what they did not run waits.

    (That the deadline is the study's and not each worker's own is the next test: a worker
    started after it runs nothing. No assertion here compares times.)"""
    storage = open_storage(sqlite_url, heartbeat_interval=1)
    # 8 s: room for a worker's start on a loaded machine, far from the 40 trials' 20 s.
    study = open_study(storage, _spec(write_study, timeout=8))
    deadline = study.user_attrs[DEADLINE_ATTR]
    reports: list[WorkerReport] = []
    first = _start_worker(storage, study.study_name, 0, reports)
    wait_for(
        lambda: _completed(study) >= 2 or time.time() > deadline - 2, "the first worker's trials"
    )
    second = _start_worker(storage, study.study_name, 1, reports)
    for thread in (first, second):
        thread.join(WAIT_SECONDS)

    trials = study.get_trials(deepcopy=False)
    assert len(reports) == 2
    assert all(not r.stopped for r in reports)
    # The budget still holds: run trials finished, unrun queued ones wait (not "finished").
    budget = budget_of(study)
    assert {t.state for t in trials} == {TrialState.COMPLETE, TrialState.WAITING}
    assert budget.finished == sum(r.trials for r in reports) == _completed(study)
    assert budget.states[TrialState.WAITING] > 0
    assert not budget.done
    assert budget.finished + budget.pending == 40


def test_a_worker_joining_after_the_deadline_runs_nothing(sqlite_url, write_study) -> None:
    study = open_study(open_storage(sqlite_url), _spec(write_study, timeout=1))
    deadline = study.user_attrs[DEADLINE_ATTR]
    wait_for(lambda: time.time() > deadline, "the study's deadline to pass")

    run = run_hpo(
        "worker",
        "--study",
        study.study_name,
        "--gpus",
        "none",
        env=worker_settings(sqlite_url),
        timeout=WAIT_SECONDS,
    )

    assert run.returncode == 0, run.stderr
    assert "passed its deadline" in run.stderr
    assert {t.state for t in study.get_trials()} == {TrialState.WAITING}
    assert budget_of(study).finished == 0


def test_relaunching_keeps_the_deadline_and_a_new_timeout_moves_it(sqlite_url, write_study) -> None:
    storage = open_storage(sqlite_url)
    spec = _spec(write_study, timeout=60)
    first = open_study(storage, spec).user_attrs[DEADLINE_ATTR]
    time.sleep(0.05)  # so that a deadline set again from now would differ

    assert open_study(storage, spec, trials=50).user_attrs[DEADLINE_ATTR] == first

    longer = dataclasses.replace(spec, timeout=120)
    attrs = open_study(storage, longer).user_attrs
    assert attrs[DEADLINE_ATTR] > first + 60
    assert attrs[SPEC_ATTR]["timeout"] == 120
    assert open_study(storage, longer).user_attrs[DEADLINE_ATTR] == attrs[DEADLINE_ATTR]

    unlimited = open_study(storage, dataclasses.replace(spec, timeout=None))
    assert unlimited.user_attrs[DEADLINE_ATTR] is None


def test_a_corrupt_deadline_is_one_line(sqlite_url, write_study) -> None:
    storage = open_storage(sqlite_url)
    study = open_study(storage, _spec(write_study, timeout=60))
    study.set_user_attr(DEADLINE_ATTR, "soon")
    with pytest.raises(HpoError, match=r"corrupt.*deadline is a string"):
        run_worker(storage, study.study_name, objective_factory=zero_cost())
