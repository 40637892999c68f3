"""hpo/storage/_optuna.py's one-transaction writes do what Optuna's separate calls do, in one commit:
queueing several trials, and claiming a queued trial with its heartbeat and attrs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from hpo.storage import _optuna

WORKER = {"worker": "host:123"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def rdb(request: pytest.FixtureRequest, tmp_path) -> Iterator[optuna.storages.RDBStorage]:
    """A fresh RDBStorage with Optuna's heartbeat on, on SQLite and on PostgreSQL."""
    url = (
        f"sqlite:///{tmp_path / 'tx.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    yield optuna.storages.RDBStorage(url, heartbeat_interval=60)


def commits(storage: optuna.storages.RDBStorage) -> list[int]:
    """A running count of the engine's commits (a list so the caller sees it grow)."""
    count = [0]
    sqlalchemy.event.listen(
        storage.engine, "commit", lambda _conn: count.__setitem__(0, count[0] + 1)
    )
    return count


def test_create_waiting_trials_queues_numbered_trials_in_one_commit(rdb) -> None:
    study = optuna.create_study(storage=rdb)
    study.ask()  # trial 0, so the queued ones must number on from it
    counted = commits(rdb)

    _optuna.create_waiting_trials(rdb, _optuna.study_id(study), 5)

    assert counted[0] == 1
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.number for t in waiting] == [1, 2, 3, 4, 5]
    assert all(not t.params and not t.system_attrs for t in waiting)
    assert _optuna.queue_counts(rdb, _optuna.study_id(study)) == (6, 5)


def test_create_no_trials_is_a_no_op(rdb) -> None:
    study = optuna.create_study(storage=rdb)
    counted = commits(rdb)
    _optuna.create_waiting_trials(rdb, _optuna.study_id(study), 0)
    assert counted[0] == 0 and not study.trials


def test_claim_sets_running_heartbeat_and_attrs_in_one_commit(rdb) -> None:
    study = optuna.create_study(storage=rdb)
    _optuna.create_waiting_trials(rdb, _optuna.study_id(study), 1)
    queued = study.trials[0]
    counted = commits(rdb)

    assert _optuna.claim_waiting_trial(rdb, _optuna.trial_id(queued), WORKER, heartbeat=True)

    assert counted[0] == 1
    claimed = rdb.get_trial(_optuna.trial_id(queued))
    assert claimed.state == TrialState.RUNNING and claimed.datetime_start is not None
    assert claimed.user_attrs == WORKER
    # Its heartbeat is fresh: with a grace period of 60 s nothing is stale yet, and once the
    # grace period is zero the claimed trial (and only it) is. SQLite's clock counts whole
    # seconds, so the beat must be a second old for "older than now" to hold.
    assert rdb._get_stale_trial_ids(_optuna.study_id(study)) == []
    rdb.grace_period = 0
    time.sleep(1.1)
    assert rdb._get_stale_trial_ids(_optuna.study_id(study)) == [_optuna.trial_id(queued)]


def test_claim_of_a_trial_another_worker_took_is_refused(rdb) -> None:
    study = optuna.create_study(storage=rdb)
    _optuna.create_waiting_trials(rdb, _optuna.study_id(study), 1)
    queued_id = _optuna.trial_id(study.trials[0])
    assert _optuna.claim_waiting_trial(rdb, queued_id, {"worker": "first"}, heartbeat=True)

    assert not _optuna.claim_waiting_trial(rdb, queued_id, {"worker": "second"}, heartbeat=True)
    assert rdb.get_trial(queued_id).user_attrs == {"worker": "first"}


def test_claim_of_a_finished_trial_raises_as_optuna_does(rdb) -> None:
    study = optuna.create_study(storage=rdb)
    trial = study.ask()
    study.tell(trial, 1.0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        _optuna.claim_waiting_trial(rdb, _optuna.trial_id(trial), WORKER, heartbeat=False)


def test_claim_without_heartbeat_writes_no_heartbeat_row(rdb) -> None:
    study = optuna.create_study(storage=rdb)
    _optuna.create_waiting_trials(rdb, _optuna.study_id(study), 1)
    queued_id = _optuna.trial_id(study.trials[0])
    assert _optuna.claim_waiting_trial(rdb, queued_id, WORKER, heartbeat=False)
    rdb.grace_period = 0
    time.sleep(1.1)
    assert rdb._get_stale_trial_ids(_optuna.study_id(study)) == []  # no beat: never stale


def test_waiting_trial_ids_lists_the_queue_in_number_order(rdb) -> None:
    study = optuna.create_study(storage=rdb)
    _optuna.create_waiting_trials(rdb, _optuna.study_id(study), 3)
    first, second, third = (_optuna.trial_id(t) for t in study.trials)
    assert _optuna.claim_waiting_trial(rdb, second, WORKER, heartbeat=False)
    assert _optuna.waiting_trial_ids(rdb, _optuna.study_id(study)) == ([], [first, third])


def test_fixed_params_fill_queued_trials_first_then_new_ones_in_one_commit(rdb) -> None:
    """Known params take queued trials that fix none (lowest first, a claimed one passed
    over), then new trials out of the count; the study attrs land in the same commit."""
    study = optuna.create_study(storage=rdb)
    study_id = _optuna.study_id(study)
    _optuna.create_waiting_trials(rdb, study_id, 2)
    first = _optuna.trial_id(study.trials[0])
    assert _optuna.claim_waiting_trial(rdb, first, WORKER, heartbeat=False)
    count = commits(rdb)
    fixed = [{"x": 0.1}, {"x": 0.2}, {"x": 0.3}]
    queued = _optuna.create_waiting_trials(
        rdb, study_id, 3, fixed=fixed, study_attrs=lambda n: {"queued": n}
    )
    assert (queued, count[0]) == (3, 1)  # one fills trial 1, two take new trials 2 and 3
    trials = study.get_trials()
    assert [t.system_attrs.get("fixed_params") for t in trials] == [None, *fixed, None]
    assert study.user_attrs["queued"] == 3
    known, others = _optuna.waiting_trial_ids(rdb, study_id)
    assert known == [_optuna.trial_id(t) for t in trials[1:4]]
    assert others == [_optuna.trial_id(trials[4])]
    study.enqueue_trial({"x": 0.5})  # Optuna's own enqueue counts as known too
    assert len(_optuna.waiting_trial_ids(rdb, study_id)[0]) == 4


def test_a_trial_claimed_by_id_is_usable_through_optunas_cache(tmp_path) -> None:
    """Optuna's per-process cache must know a trial to take its params; a trial claimed by
    id from the queue is told to it."""
    # Random search reads no trials before sampling (TPE would fill the cache first).
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'cache.db'}", sampler=optuna.samplers.RandomSampler()
    )
    cached = _optuna.study_storage(study)
    rdb = _optuna.rdb_storage(cached)
    _optuna.create_waiting_trials(rdb, _optuna.study_id(study), 1)
    queued_id = _optuna.waiting_trial_ids(rdb, _optuna.study_id(study))[1][0]
    assert _optuna.claim_waiting_trial(rdb, queued_id, WORKER, heartbeat=False)
    trial = optuna.Trial(study, queued_id)
    with pytest.raises(KeyError):  # what the cache does with a trial it never read
        trial.suggest_float("x", 0, 1)

    _optuna.cache_claimed_trial(cached, _optuna.study_id(study), trial._cached_frozen_trial)
    x = trial.suggest_float("x", 0, 1)
    study.tell(trial, x)
    assert study.trials[0].params == {"x": x} and study.trials[0].state == TrialState.COMPLETE


def test_claim_next_takes_known_params_first_then_the_lowest_number(rdb) -> None:
    """One transaction picks and claims; a plain queued trial comes back as Optuna would read
    it, one carrying more (fixed params) as its id alone, for the caller to read."""
    study = optuna.create_study(storage=rdb)
    study_id = _optuna.study_id(study)
    _optuna.create_waiting_trials(rdb, study_id, 2)
    _optuna.create_waiting_trials(rdb, study_id, 0, fixed=[{"x": 0.5}])  # fills trial 0
    first, second = (_optuna.trial_id(t) for t in study.trials)
    count = commits(rdb)
    assert _optuna.claim_next_waiting_trial(rdb, study_id, WORKER, heartbeat=True) == (
        first,
        None,
    )
    claimed_id, frozen = _optuna.claim_next_waiting_trial(rdb, study_id, WORKER, heartbeat=True)
    assert claimed_id == second and count[0] == 2
    stored = rdb.get_trial(second)
    assert frozen == stored  # FrozenTrial compares every field
    assert frozen.datetime_start == stored.datetime_start and frozen.user_attrs == WORKER
    assert _optuna.claim_next_waiting_trial(rdb, study_id, WORKER, heartbeat=True) is None
    assert sorted(rdb._get_stale_trial_ids(study_id)) == []  # both beat at the claim


def test_a_trial_built_from_the_claim_is_the_trial_optuna_builds(tmp_path) -> None:
    """claimed_trial runs Optuna's own Trial.__init__ without its read of the trial: the
    same Trial, pointed at the real study, and no statement issued."""
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'built.db'}", sampler=optuna.samplers.RandomSampler()
    )
    rdb = _optuna.rdb_storage(_optuna.study_storage(study))
    study_id = _optuna.study_id(study)
    _optuna.create_waiting_trials(rdb, study_id, 1)
    queued_id, frozen = _optuna.claim_next_waiting_trial(rdb, study_id, WORKER, heartbeat=False)
    statements: list[str] = []
    sqlalchemy.event.listen(rdb.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    built = _optuna.claimed_trial(study, frozen)
    assert statements == []
    read = optuna.Trial(study, queued_id)
    assert vars(built).keys() == vars(read).keys()
    assert built.study is study and built.storage is study._storage
    assert built._cached_frozen_trial == read._cached_frozen_trial
    assert (built._fixed_params, built.relative_search_space) == ({}, None)


def test_tell_reads_nothing_and_stores_what_study_tell_stores(tmp_path) -> None:
    """The tell takes the trial from the Trial's own copy: a pruned trial still gets its last
    report as its value, and one another worker failed meanwhile is refused at the write."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'tell.db'}")
    rdb = _optuna.rdb_storage(_optuna.study_storage(study))
    pruned, failed = study.ask(), study.ask()
    pruned.suggest_float("x", 0, 1)
    pruned.report(0.25, 1)
    pruned.report(0.5, 2)
    selects: list[str] = []
    sqlalchemy.event.listen(
        rdb.engine,
        "before_cursor_execute",
        lambda *a: selects.append(a[2]) if a[2].lstrip().upper().startswith("SELECT") else None,
    )
    assert _optuna.tell(study, pruned, state=TrialState.PRUNED) == (TrialState.PRUNED, [0.5])
    whole_trial_reads = [s for s in selects if "trial_params" in s or "trial_user_attr" in s]
    assert whole_trial_reads == []  # Study.tell: two reads of the whole trial
    told = rdb.get_trial(_optuna.trial_id(pruned))
    assert (told.state, told.values, told.params.keys()) == (TrialState.PRUNED, [0.5], {"x"})
    selects.clear()
    rdb.set_trial_state_values(_optuna.trial_id(failed), TrialState.FAIL)  # "stale"
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        _optuna.tell(study, failed, 1.0)
    assert rdb.get_trial(_optuna.trial_id(failed)).state == TrialState.FAIL
