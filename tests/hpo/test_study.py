"""Study creation, spec snapshot, conflict checks and the queued-trial budget."""

from __future__ import annotations

import dataclasses
import threading

import optuna
import pytest
from optuna.trial import TrialState

from hpo.errors import HpoError, StudyConflictError
from hpo.spec import load_spec
from hpo.storage import open_storage
from hpo.study import (
    BUDGET_ATTR,
    SPEC_ATTR,
    budget_of,
    counted_trials,
    load_spec_from_storage,
    open_study,
)


@pytest.fixture
def spec(write_study):
    return load_spec(write_study("s", trials=5))


def test_new_study_stores_its_spec_and_queues_the_budget(sqlite_url, spec) -> None:
    storage = open_storage(sqlite_url)
    study = open_study(storage, spec)
    assert study.user_attrs[SPEC_ATTR] == spec.to_dict()
    assert study.user_attrs[BUDGET_ATTR] == 5
    assert [t.state for t in study.get_trials()] == [TrialState.WAITING] * 5
    assert load_spec_from_storage(storage, "s") == spec


def test_resume_tops_up_only_what_is_missing(sqlite_url, spec) -> None:
    storage = open_storage(sqlite_url)
    study = open_study(storage, spec, trials=3)
    trial = study.ask()  # pops a queued trial
    study.tell(trial, 1.0)
    open_study(storage, spec, trials=3)
    assert len(study.get_trials()) == 3
    open_study(storage, spec, trials=7)
    budget = budget_of(study)
    assert (budget.target, budget.finished, budget.pending) == (7, 1, 6)


def test_same_name_with_another_spec_is_refused_before_writing(sqlite_url, spec) -> None:
    storage = open_storage(sqlite_url)
    open_study(storage, spec)
    changed = dataclasses.replace(spec, train=dataclasses.replace(spec.train, epochs=9))
    with pytest.raises(StudyConflictError, match=r"'s' already exists .*train\.epochs.*--name"):
        open_study(storage, changed, trials=50)
    study = optuna.load_study(study_name="s", storage=storage)
    assert study.user_attrs[BUDGET_ATTR] == 5  # nothing written
    assert study.user_attrs[SPEC_ATTR] == spec.to_dict()
    assert len(study.get_trials()) == 5


def test_budget_and_name_changes_are_not_conflicts(sqlite_url, spec) -> None:
    storage = open_storage(sqlite_url)
    open_study(storage, spec)
    open_study(storage, dataclasses.replace(spec, trials=8))
    renamed = open_study(
        storage,
        dataclasses.replace(spec, name="s2", train=dataclasses.replace(spec.train, epochs=9)),
    )
    assert renamed.study_name == "s2"


def test_missing_study_lists_what_exists(sqlite_url, spec) -> None:
    storage = open_storage(sqlite_url)
    open_study(storage, spec)
    with pytest.raises(HpoError, match=r"no hpo study named 'x' .*studies there: s\)"):
        load_spec_from_storage(storage, "x")


def test_superseded_attempts_do_not_count() -> None:
    study = optuna.create_study()
    failed = optuna.trial.create_trial(state=TrialState.FAIL)
    study.add_trial(failed)
    original = study.get_trials()[0]
    optuna.storages.RetryHeartbeatStaleTrialCallback()(study, original)
    trials = study.get_trials()
    assert [t.number for t in counted_trials(trials)] == [1]


def test_concurrent_opens_make_one_study_and_one_budget(sqlite_url, spec) -> None:
    errors: list[BaseException] = []

    def launch() -> None:
        try:
            open_study(open_storage(sqlite_url), spec)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=launch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    storage = open_storage(sqlite_url)
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["s"]
    assert len(optuna.load_study(study_name="s", storage=storage).get_trials()) == 5
