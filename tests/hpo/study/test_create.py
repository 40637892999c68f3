"""Study creation, spec snapshot, conflict checks and the queued-trial budget."""

from __future__ import annotations

import dataclasses
import subprocess
import threading

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from hpo.config.spec import load_spec
from hpo.errors import HpoError, StudyConflictError
from hpo.storage import _optuna
from hpo.storage.open import open_storage
from hpo.study.create import QUEUE_DEPTH, load_spec_from_storage, open_study, top_up
from hpo.study.records import BUDGET_ATTR, SPEC_ATTR, budget_of, counted_trials
from tests.helpers import run_hpo


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


def test_a_relaunch_with_another_keep_is_no_conflict_and_workers_see_it(sqlite_url, spec) -> None:
    storage = open_storage(sqlite_url)
    open_study(storage, spec)
    open_study(storage, dataclasses.replace(spec, keep=0))
    assert load_spec_from_storage(storage, spec.name).keep == 0
    stored = optuna.load_study(study_name=spec.name, storage=storage).user_attrs[SPEC_ATTR]
    assert stored["keep"] == 0 and stored["timeout"] == spec.timeout


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


def _waiting(study: optuna.Study) -> int:
    return len(study.get_trials(states=(TrialState.WAITING,)))


def _finish(study: optuna.Study, count: int) -> None:
    """Run `count` queued trials to completion as a worker would (ask pops the queue)."""
    for _ in range(count):
        study.tell(study.ask(), 1.0)


def test_a_budget_larger_than_the_queue_is_queued_a_batch_at_a_time(sqlite_url, spec) -> None:
    storage = open_storage(sqlite_url)
    study = open_study(storage, spec, trials=QUEUE_DEPTH + 24)
    assert _waiting(study) == QUEUE_DEPTH
    budget = budget_of(study)
    assert (budget.target, budget.unqueued, budget.pending) == (QUEUE_DEPTH + 24, 24, 40)
    assert not budget.done
    _finish(study, 10)
    assert top_up(study, storage) == QUEUE_DEPTH
    assert _waiting(study) == QUEUE_DEPTH and budget_of(study).unqueued == 14
    _finish(study, QUEUE_DEPTH)
    assert top_up(study, storage) == 14  # the rest of the budget, no more
    _finish(study, 14)
    assert top_up(study, storage) == 0
    assert len(study.get_trials()) == QUEUE_DEPTH + 24
    assert budget_of(study).done


def test_retries_take_no_budget_from_the_queue(sqlite_url, spec) -> None:
    storage = open_storage(sqlite_url)
    study = open_study(storage, spec, trials=QUEUE_DEPTH + 2)
    trial = study.ask()
    study.tell(trial, state=TrialState.FAIL)
    optuna.storages.RetryHeartbeatStaleTrialCallback()(study, study.get_trials()[trial.number])
    # The retry copy is queued beside the 15 others; it took the dead attempt's place.
    assert _waiting(study) == QUEUE_DEPTH
    _finish(study, QUEUE_DEPTH)
    assert top_up(study, storage) == 2
    _finish(study, 2)
    assert top_up(study, storage) == 0
    assert len(counted_trials(study.get_trials())) == QUEUE_DEPTH + 2


def test_concurrent_top_ups_never_pass_the_budget(sqlite_url, spec) -> None:
    storage = open_storage(sqlite_url)
    study = open_study(storage, spec, trials=QUEUE_DEPTH + 5)
    _finish(study, QUEUE_DEPTH)

    def top_up_from_another_process() -> None:
        other = open_storage(sqlite_url)
        top_up(optuna.load_study(study_name="s", storage=other), other)

    threads = [threading.Thread(target=top_up_from_another_process) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(study.get_trials()) == QUEUE_DEPTH + 5
    assert _waiting(study) == 5


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


# ---------------------------------------------------------------- corrupt stored specs

NOT_JSON = "not JSON"  # stands for a stored value whose text is not JSON at all
CORRUPT_SPECS = {
    "invalid JSON text": NOT_JSON,
    "a string": "digits-cnn",
    "a list": [{"model": "mlp"}],
    "an empty object": {},
    "null": None,
    "an object without a model": {"name": "p8", "trials": 3},
}


def _add_corrupt_study(storage: optuna.storages.RDBStorage, name: str, value: object) -> None:
    study = optuna.create_study(study_name=name, storage=storage)
    if value is NOT_JSON:  # Optuna can only store JSON: break the stored text itself
        study.set_user_attr(SPEC_ATTR, "to be broken")
        with storage.engine.begin() as connection:
            connection.execute(
                sqlalchemy.text(
                    "UPDATE study_user_attributes SET value_json = '{\"model\": mlp' "
                    "WHERE study_id = :s AND key = :k"
                ),
                {"s": _optuna.study_id(study), "k": SPEC_ATTR},
            )
    else:
        study.set_user_attr(SPEC_ATTR, value)


def _one_line_error(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    return run.stderr


@pytest.mark.parametrize("case", sorted(CORRUPT_SPECS))
def test_a_corrupt_stored_spec_is_one_line_for_worker_and_launch(
    sqlite_url, spec, write_study, tmp_path, case: str
) -> None:
    storage = open_storage(sqlite_url)
    open_study(storage, spec)
    _add_corrupt_study(storage, "p8", CORRUPT_SPECS[case])
    expected = "error: study 'p8' has a corrupt hpo spec ("

    worker = run_hpo("--storage", sqlite_url, "worker", "--study", "p8", cwd=tmp_path)
    assert _one_line_error(worker).startswith(expected)  # was: a traceback, or "no study"
    launch = run_hpo(
        "--storage",
        sqlite_url,
        "launch",
        "study",
        str(write_study("x")),
        "--name",
        "p8",
        "--workers",
        "0",
        cwd=tmp_path,
    )
    assert _one_line_error(launch).startswith(expected)
    with pytest.raises(HpoError, match=r"^study 'p8' has a corrupt hpo spec \("):
        load_spec_from_storage(storage, "p8")
    assert [t.number for t in optuna.load_study(study_name="p8", storage=storage).trials] == []


def test_studies_lists_every_study_beside_corrupt_ones(sqlite_url, spec, tmp_path) -> None:
    storage = open_storage(sqlite_url)
    open_study(storage, spec)
    for number, value in enumerate(CORRUPT_SPECS.values()):
        _add_corrupt_study(storage, f"p{number}", value)

    run = run_hpo("--storage", sqlite_url, "studies", cwd=tmp_path)

    assert run.returncode == 0, run.stderr
    rows = {line.split()[1]: line for line in run.stdout.splitlines() if line.startswith("│")}
    assert sorted(rows) == ["p0", "p1", "p2", "p3", "p4", "p5", "s"]
    assert "mlp" in rows["s"]
    assert all("corrupt spec" in rows[f"p{n}"] for n in range(len(CORRUPT_SPECS)))
    with pytest.raises(HpoError, match=r"no hpo study named 'x' .*studies there: p0, p1"):
        load_spec_from_storage(storage, "x")  # listing the studies survives them too


@pytest.mark.parametrize(
    "budget", ["abc", [1], -3, True], ids=["string", "list", "negative", "bool"]
)
def test_a_corrupt_stored_budget_is_one_line_for_a_worker_and_a_relaunch_repairs_it(
    sqlite_url, spec, write_study, tmp_path, budget
) -> None:
    storage = open_storage(sqlite_url)
    study = open_study(storage, spec, trials=QUEUE_DEPTH + 4)
    study.set_user_attr(BUDGET_ATTR, budget)
    with pytest.raises(HpoError, match=r"study 's' has a corrupt budget \(hpo_trials = "):
        top_up(study, storage)
    for trial in study.get_trials():  # an empty queue: the worker's first call is a top-up
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    worker = run_hpo("--storage", sqlite_url, "worker", "--study", "s", cwd=tmp_path)
    assert "has a corrupt budget" in _one_line_error(worker)
    open_study(storage, spec, trials=QUEUE_DEPTH + 4)  # the launch command's way to repair it
    assert study.user_attrs[BUDGET_ATTR] == QUEUE_DEPTH + 4
    assert top_up(study, storage) == 4
