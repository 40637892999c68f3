"""The one place that reaches into Optuna's private API.

Optuna offers no public way to get a study's storage or id, a trial's id, to wrap the
private RDBStorage methods its per-process cache calls, to list studies whose attrs do
not parse, to count a study's trials without reading them all, to write several attrs
of a trial or queue several trials in one transaction, to claim a queued trial and build
its Trial without reading it back, to tell a trial without reading it back, or to serve
its gRPC storage service on a server of one's own (beside hpo's calls, on a port it
chose). hpo needs each of these; every other module goes through the functions here, and
`tests/hpo/storage/test_optuna_internals.py` checks that each name still exists in the installed
Optuna, so an upgrade that removes one fails a test instead of breaking a worker
silently.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import optuna
import sqlalchemy
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

# Private RDBStorage methods that Optuna's _CachedStorage calls directly (bypassing the
# public ones), so a wrapper of RDBStorage's calls must wrap these too.
RDB_PRIVATE_METHODS: tuple[str, ...] = (
    "_create_new_trial",
    "_set_trial_param",
    "_get_trials",
    "_get_best_trial_id",
    "_get_stale_trial_ids",
)

# Instance attributes read below, by the class whose instances carry them (set in
# __init__, so the test checks them on real instances).
INSTANCE_ATTRIBUTES: dict[type, tuple[str, ...]] = {
    optuna.Study: ("_storage", "_study_id"),
    FrozenTrial: ("_trial_id",),
    optuna.study.StudySummary: ("_study_id",),
    optuna.storages.RDBStorage: ("scoped_session",),
    optuna.Trial: ("_trial_id", "_cached_frozen_trial", "study", "storage"),
}

# Private names of optuna.storages._rdb (module attributes and RDBStorage methods) that
# count a study's trials in SQL, and queue, claim or write a trial's attrs in one session.
RDB_MODULE_NAMES: dict[str, tuple[str, ...]] = {
    "optuna.storages._rdb.storage": ("_create_scoped_session",),
    "optuna.storages._cached_storage": ("_StudyInfo",),
    "optuna.storages._rdb.models": (
        "StudyModel",
        "TrialHeartbeatModel",
        "StudyUserAttributeModel",
        "TrialModel",
        "TrialSystemAttributeModel",
        "TrialUserAttributeModel",
        "TrialValueModel",
        "TrialParamModel",
        "TrialIntermediateValueModel",
    ),
    # Study.tell's work without its read-back of the told trial.
    "optuna.study._tell": ("_tell_with_warning",),
}
# The trial system attr in which Study.enqueue_trial stores the params a queued trial must
# take; Trial's suggest calls return them instead of sampling (a documented convention, but
# Optuna offers no name for it).
FIXED_PARAMS = "fixed_params"
# Private RDBStorage methods called inside a session of hpo's (never retried on their own).
RDB_SESSION_METHODS: tuple[str, ...] = (
    "_set_trial_attr_without_commit",
    "_set_trial_param_without_commit",
    "_get_prepared_new_trial",
)
# Optuna's per-process cache (optuna.storages._CachedStorage) keeps the RDBStorage, its
# studies and its lock here, and registers a trial it has read with this method.
CACHED_STORAGE_ATTRIBUTES: tuple[str, ...] = (
    "_backend",
    "_studies",
    "_lock",
    "_trial_id_to_study_id_and_number",
)
CACHED_STORAGE_METHODS: tuple[str, ...] = ("_add_trials_to_cache",)
# What run_grpc_proxy_server puts on its server (hpo.storage.proxy_server adds its own calls
# beside them, and learns the port it bound), and Optuna's own wrapper for a served storage.
PROXY_MODULE_NAMES: dict[str, tuple[str, ...]] = {
    "optuna.storages._grpc.servicer": ("OptunaStorageProxyService",),
    "optuna.storages._grpc.auto_generated.api_pb2_grpc": (
        "add_StorageServiceServicer_to_server",
        "StorageServiceStub",
    ),
    "optuna.storages": ("get_storage",),
    # A TLS client (hpo.storage.proxy_client) builds its own channel and, on it, the stub and
    # cache that GrpcStorageProxy._setup builds on an insecure one.
    "optuna.storages._grpc.client": ("GrpcClientCache",),
}


def study_storage(study: optuna.Study) -> BaseStorage:
    """The storage a study talks to (Optuna's per-process cache around the RDBStorage)."""
    return study._storage


def study_id(study: optuna.Study | optuna.study.StudySummary) -> int:
    """The study's id in its storage: unique and stable, unlike its free-text name."""
    return study._study_id


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The trial's id in its storage (numbers restart per study; ids do not)."""
    return trial._trial_id


def study_names(storage: BaseStorage) -> list[str]:
    """Every study's name, sorted; still readable when a study's attrs are not.

    Optuna lists studies with all their attrs parsed, so one stored value that is not
    JSON fails the listing of every study; the names alone are then read from its
    `studies` table.
    """
    try:
        return sorted(s.study_name for s in storage.get_all_studies())
    except ValueError:
        if not isinstance(storage, optuna.storages.RDBStorage):
            raise
    from optuna.storages._rdb.models import StudyModel

    with storage.engine.connect() as connection:
        return sorted(connection.execute(sqlalchemy.select(StudyModel.study_name)).scalars())


def rdb_storage(storage: BaseStorage) -> optuna.storages.RDBStorage | None:
    """The RDBStorage under a storage (itself, or the one Optuna's cache wraps); else None."""
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, optuna.storages.RDBStorage) else None


def queue_counts(storage: optuna.storages.RDBStorage, study_id: int) -> tuple[int, int]:
    """(trials that count against the budget, trials WAITING) of a study, in one statement.

    Every trial counts but the attempts a retry superseded; each retry copy (Optuna's
    RetryHeartbeatStaleTrialCallback, hpo's past-the-cap record) carries the system attr
    `failed_trial` and supersedes exactly one attempt, so counting the copies counts the
    superseded attempts. The database counts; no trial is read.
    """
    from optuna.storages._rdb.models import TrialModel, TrialSystemAttributeModel

    trials = TrialModel.__table__
    attrs = TrialSystemAttributeModel.__table__
    copies = (
        sqlalchemy.select(sqlalchemy.func.count())
        .select_from(attrs.join(trials, attrs.c.trial_id == trials.c.trial_id))
        .where(trials.c.study_id == study_id, attrs.c.key == "failed_trial")
        .scalar_subquery()
    )
    waiting = sqlalchemy.func.coalesce(
        sqlalchemy.func.sum(sqlalchemy.case((trials.c.state == TrialState.WAITING, 1), else_=0)),
        0,
    )
    query = sqlalchemy.select(sqlalchemy.func.count() - copies, waiting).where(
        trials.c.study_id == study_id
    )
    with storage.engine.connect() as connection:
        used, queued = connection.execute(query).one()
    return int(used), int(queued)


def waiting_trial_ids(
    storage: optuna.storages.RDBStorage, study_id: int
) -> tuple[list[int], list[int]]:
    """Ids of a study's WAITING trials, (those with fixed params, the others), each in number
    order, in one statement of ids alone.

    Reading them through Optuna's cache loads each queued trial whole (its params, attrs,
    values: four more statements and a row each) on every claim.
    """
    from optuna.storages._rdb.models import TrialModel

    trials = TrialModel.__table__
    query = (
        sqlalchemy.select(trials.c.trial_id, _has_fixed_params(trials).label("fixed"))
        .where(trials.c.study_id == study_id, trials.c.state == TrialState.WAITING)
        .order_by(trials.c.number)
    )
    with storage.engine.connect() as connection:
        rows = connection.execute(query).all()
    fixed_ids = [id_ for id_, is_fixed in rows if is_fixed]
    return fixed_ids, [id_ for id_, is_fixed in rows if not is_fixed]


def trial_outcome(
    storage: optuna.storages.RDBStorage, trial_id: int
) -> tuple[int, TrialState, float | None]:
    """A trial's number, state and first objective value (None: none), in one statement."""
    from optuna.storages._rdb.models import TrialModel, TrialValueModel

    trials = TrialModel.__table__
    values = TrialValueModel.__table__
    query = (
        sqlalchemy.select(trials.c.number, trials.c.state, values.c.value, values.c.value_type)
        .select_from(
            trials.outerjoin(
                values,
                sqlalchemy.and_(values.c.trial_id == trials.c.trial_id, values.c.objective == 0),
            )
        )
        .where(trials.c.trial_id == trial_id)
    )
    with storage.engine.connect() as connection:
        number, state, value, kind = connection.execute(query).one()
    state = state if isinstance(state, TrialState) else TrialState(state)
    value = None if kind is None else TrialValueModel.stored_repr_to_value(value, kind)
    return number, state, value


def cache_claimed_trial(storage: BaseStorage, study_id: int, trial: FrozenTrial) -> None:
    """Tell Optuna's per-process cache (if `storage` is one) about a trial claimed outside it.

    The cache maps each trial it serves to its study (set_trial_param needs that) and
    re-reads its unfinished trials; a trial claimed by id it has never read would be
    unknown to it. Registered as unfinished, it is refreshed on the cache's next read.
    """
    studies = getattr(storage, "_studies", None)
    if studies is None:
        return
    from optuna.storages._cached_storage import _StudyInfo

    with storage._lock:
        info = studies.setdefault(study_id, _StudyInfo())
        storage._add_trials_to_cache(study_id, [trial])
        info.unfinished_trial_ids.add(trial._trial_id)


def write_user_attrs(
    storage: optuna.storages.RDBStorage, trial_id: int, attrs: Mapping[str, Any]
) -> None:
    """Write several user attrs of an unfinished trial in one transaction.

    Optuna's set_trial_user_attr commits each attr on its own; this checks once that the
    trial is still updatable (UpdateFinishedTrialError otherwise), then upserts every attr
    with one statement on SQLite and PostgreSQL (one per attr elsewhere).
    """
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    if not attrs:
        return
    with _create_scoped_session(storage.scoped_session) as session:
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
        storage.check_trial_is_updatable(trial_id, trial.state)
        _upsert_user_attrs(storage, session, trial_id, attrs)


def claim_waiting_trial(
    storage: optuna.storages.RDBStorage,
    trial_id: int,
    attrs: Mapping[str, Any],
    *,
    heartbeat: bool,
) -> bool:
    """Move a WAITING trial to RUNNING with its first heartbeat and `attrs`, in one transaction.

    What set_trial_state_values, record_heartbeat and set_trial_user_attr do in three
    commits. The heartbeat lands with the claim, so a worker killed right after it still
    leaves a trial that goes stale. False if another worker claimed the trial first;
    UpdateFinishedTrialError if it has finished meanwhile, as set_trial_state_values does.
    """
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(storage.scoped_session) as session:
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
        storage.check_trial_is_updatable(trial_id, trial.state)
        if trial.state != TrialState.WAITING:
            return False
        trial.state = TrialState.RUNNING
        trial.datetime_start = datetime.now()
        if heartbeat:
            _upsert_heartbeat(storage, session, trial_id)
        _upsert_user_attrs(storage, session, trial_id, attrs)
    return True


def claim_next_waiting_trial(
    storage: optuna.storages.RDBStorage,
    study_id: int,
    attrs: Mapping[str, Any],
    *,
    heartbeat: bool,
) -> tuple[int, FrozenTrial | None] | None:
    """Claim the study's next WAITING trial (fixed params first, then lowest number) with its
    first heartbeat and `attrs`, in one transaction; None if none waits.

    Returns (trial id, the claimed trial as Optuna would read it back, or None where it
    carries more than the claim wrote: params, attrs or values of a retry or a known
    configuration, for the caller to read). The pick, the move to RUNNING and the writes
    share the transaction: PostgreSQL skips rows another claim holds locked (no two workers
    take one trial, none waits on another), SQLite's BEGIN IMMEDIATE serializes claims.
    """
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(storage.scoped_session) as session:
        row = session.execute(_next_waiting_query(study_id)).first()
        if row is None:
            return None
        claimed_id, number, plain = row
        trials = _table("TrialModel")
        started = datetime.now()
        moved = session.execute(
            sqlalchemy.update(trials)
            .where(trials.c.trial_id == claimed_id, trials.c.state == TrialState.WAITING)
            .values(state=TrialState.RUNNING, datetime_start=started)
        )
        if moved.rowcount != 1:  # taken meanwhile: only where the row lock is not kept
            return None
        if heartbeat:
            _upsert_heartbeat(storage, session, claimed_id)
        _upsert_user_attrs(storage, session, claimed_id, attrs)
    if not plain:
        return claimed_id, None
    frozen = FrozenTrial(
        number=number,
        state=TrialState.RUNNING,
        value=None,
        datetime_start=started,
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs=dict(attrs),
        system_attrs={},
        intermediate_values={},
        trial_id=claimed_id,
    )
    return claimed_id, frozen


def _table(model: str) -> sqlalchemy.Table:
    from optuna.storages._rdb import models

    return getattr(models, model).__table__


def _has_fixed_params(trials: sqlalchemy.Table) -> sqlalchemy.Exists:
    """Whether a row of `trials` (Optuna's trials table) is a queued trial with fixed params
    (`Study.enqueue_trial`'s system attr), as a clause of a query over that table."""
    attrs = _table("TrialSystemAttributeModel")
    return sqlalchemy.exists().where(
        attrs.c.trial_id == trials.c.trial_id, attrs.c.key == FIXED_PARAMS
    )


def _next_waiting_query(study_id: int) -> sqlalchemy.Select[Any]:
    """(id, number, whether it carries nothing yet) of the next WAITING trial, row-locked."""
    trials = _table("TrialModel")
    owned = [
        sqlalchemy.exists().where(_table(model).c.trial_id == trials.c.trial_id)
        for model in (
            "TrialParamModel",
            "TrialUserAttributeModel",
            "TrialSystemAttributeModel",
            "TrialValueModel",
            "TrialIntermediateValueModel",
        )
    ]
    plain = sqlalchemy.not_(sqlalchemy.or_(*owned))
    return (
        sqlalchemy.select(trials.c.trial_id, trials.c.number, plain.label("plain"))
        .where(trials.c.study_id == study_id, trials.c.state == TrialState.WAITING)
        .order_by(_has_fixed_params(trials).desc(), trials.c.number)
        .limit(1)
        .with_for_update(of=trials, skip_locked=True)
    )


def claimed_trial(study: optuna.Study, frozen: FrozenTrial) -> optuna.Trial:
    """optuna.Trial(study, id) of a trial just claimed, without its read of the trial.

    Optuna's own __init__ runs (the sampler's before_trial included), on a shallow copy of
    the study whose storage answers this one trial's read from `frozen`; the Trial is then
    pointed at the real study and storage.
    """
    shim = copy.copy(study)
    shim._storage = _KnownTrial(study._storage, frozen)
    trial = optuna.Trial(shim, frozen._trial_id)
    trial.study = study
    trial.storage = study._storage
    return trial


def claimed_system_attrs(trial: optuna.Trial) -> dict[str, Any]:
    """A running trial's system attrs as Optuna's Trial holds them: read (or, for a claimed
    plain trial, known) when the Trial was built, and updated by its own writes since."""
    return trial._cached_frozen_trial.system_attrs


@contextlib.contextmanager
def params_in_one_transaction(trial: optuna.Trial) -> Iterator[None]:
    """Write the params the block suggests on `trial` in one transaction, as it ends.

    Optuna commits each suggested param on its own (a transaction each: a dozen per trial
    of a typical space). Inside the block the Trial takes its params as always (its own
    copy of them, which the samplers read, is updated at once); its storage only collects
    the writes, which leave, each checked as Optuna checks it, when the block ends without
    an error. A storage other than Optuna's cache over a database writes each as before.
    """
    cached = trial.storage
    database = rdb_storage(cached)
    if database is None or not hasattr(cached, "_studies"):
        yield
        return
    pending: list[tuple[str, float, Any]] = []
    trial.storage = _CollectedParams(cached, trial_id(trial), pending)
    try:
        yield
    finally:
        trial.storage = cached
    if pending:
        _write_params(cached, database, trial_id(trial), pending)


def _write_params(
    cached: BaseStorage,
    database: optuna.storages.RDBStorage,
    trial_id: int,
    pending: list[tuple[str, float, Any]],
) -> None:
    """What _CachedStorage.set_trial_param does per param, for all of them in one session."""
    with cached._lock:
        study, _ = cached._trial_id_to_study_id_and_number[trial_id]
        known = cached._studies[study].param_distribution
        rows = [(name, value, dist, known.get(name)) for name, value, dist in pending]
        writer = getattr(database, "set_trial_params", None)  # hpo's storage retries it
        if writer is not None:
            writer(trial_id, rows)
        else:
            write_trial_params(database, trial_id, rows)
        for name, _, distribution in pending:
            known.setdefault(name, distribution)


def write_trial_params(
    storage: optuna.storages.RDBStorage,
    trial_id: int,
    rows: Sequence[tuple[str, float, Any, Any]],
) -> None:
    """(name, internal value, distribution, the study's known distribution or None) of each
    param, written with Optuna's own checks in one transaction."""
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(storage.scoped_session, True) as session:
        for name, value, distribution, previous in rows:
            storage._set_trial_param_without_commit(
                session, trial_id, name, value, distribution, previous
            )


class _CollectedParams:
    """A storage that collects one trial's set_trial_param calls, everything else as `inner`."""

    def __init__(
        self, inner: BaseStorage, trial_id: int, pending: list[tuple[str, float, Any]]
    ) -> None:
        self._inner = inner
        self._trial_id = trial_id
        self._pending = pending

    def set_trial_param(self, trial_id: int, name: str, value: float, distribution: Any) -> None:
        if trial_id != self._trial_id:
            self._inner.set_trial_param(trial_id, name, value, distribution)
            return
        self._pending.append((name, value, distribution))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _KnownTrial:
    """A storage that answers get_trial of one trial from memory, everything else as `inner`."""

    def __init__(self, inner: BaseStorage, frozen: FrozenTrial) -> None:
        self._inner = inner
        self._frozen = frozen

    def get_trial(self, trial_id: int) -> FrozenTrial:
        if trial_id == self._frozen._trial_id:
            return self._frozen
        return self._inner.get_trial(trial_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def tell(
    study: optuna.Study,
    trial: optuna.Trial,
    values: float | Sequence[float] | None = None,
    state: TrialState | None = None,
) -> tuple[TrialState, list[float] | None]:
    """Study.tell without its two reads of the told trial: (state, values) as stored.

    Study.tell reads the trial whole before (for the sampler's after_trial and to check it
    is still RUNNING) and after (only to return it): six statements each. The Trial's own
    copy holds all it wrote (params, reports, attrs); the state check is left to the
    write, which raises UpdateFinishedTrialError for a trial another worker failed.
    """
    from optuna.study._tell import _tell_with_warning

    shim = copy.copy(study)
    shim._storage = _KnownTrial(study._storage, copy.deepcopy(trial._cached_frozen_trial))
    told_state, told_values, _ = _tell_with_warning(
        study=shim, trial=trial, value_or_values=values, state=state
    )
    return told_state, told_values


def _upsert_user_attrs(
    storage: optuna.storages.RDBStorage, session: Any, trial_id: int, attrs: Mapping[str, Any]
) -> None:
    from optuna.storages._rdb import models

    if not attrs:
        return
    model = models.TrialUserAttributeModel
    rows = [{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()]
    if _upsert_in_one_statement(storage, session, model, model.trial_id, rows):
        return
    for row in rows:  # MySQL and others: Optuna's own upsert, one attr at a time
        storage._set_trial_attr_without_commit(
            session, model, trial_id, row["key"], attrs[row["key"]]
        )


def _upsert_heartbeat(storage: optuna.storages.RDBStorage, session: Any, trial_id: int) -> None:
    """The trial's heartbeat row at the database's clock, as record_heartbeat writes it."""
    from optuna.storages._rdb import models

    model = models.TrialHeartbeatModel
    dialect = storage.engine.dialect.name
    if dialect in ("sqlite", "postgresql"):
        insert = _dialect_insert(dialect)(model).values(trial_id=trial_id)
        session.execute(
            insert.on_conflict_do_update(
                index_elements=[model.trial_id], set_={"heartbeat": sqlalchemy.func.now()}
            )
        )
        return
    row = model.where_trial_id(trial_id, session, True)
    if row is None:
        session.add(model(trial_id=trial_id))
    else:
        row.heartbeat = session.execute(sqlalchemy.func.now()).scalar()


def create_waiting_trials(
    storage: optuna.storages.RDBStorage,
    study_id: int,
    count: int,
    *,
    fixed: Sequence[Mapping[str, Any]] = (),
    study_attrs: Callable[[int], Mapping[str, Any]] | None = None,
) -> int:
    """Queue `count` new WAITING trials of a study, and the `fixed` params, in one
    transaction; how many of `fixed` were queued.

    Study.add_trial commits each trial on its own; this takes the same study row lock that
    Optuna takes to number a new trial, then writes everything in one session. Each of
    `fixed` (params a trial must take, as Study.enqueue_trial queues them) first fills a
    queued trial that fixes none, lowest number first, so the queue and the trials it holds
    stay as many; the rest take new trials, out of `count`, before any empty one does.
    `study_attrs(queued)`, the study user attrs that say what was queued, are written in the
    same transaction, so that they never disagree with the queue.
    """
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    count = max(0, count)
    if count == 0 and not fixed:
        return 0
    with _create_scoped_session(storage.scoped_session) as session:
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        placed = _fix_queued_trials(session, study_id, fixed) if fixed else 0
        fresh = list(fixed[placed : placed + count])
        templates = [{FIXED_PARAMS: dict(params)} for params in fresh]
        templates += [{}] * (count - len(fresh))
        for system_attrs in templates:
            template = optuna.trial.create_trial(
                state=TrialState.WAITING, system_attrs=system_attrs
            )
            storage._get_prepared_new_trial(study_id, template, session)
        if study_attrs is not None:
            _upsert_study_user_attrs(storage, session, study_id, study_attrs(placed + len(fresh)))
    return placed + len(fresh)


def _fix_queued_trials(session: Any, study_id: int, fixed: Sequence[Mapping[str, Any]]) -> int:
    """Give WAITING trials without fixed params these `fixed` ones, lowest number first; how
    many found a trial. Each row is locked first (PostgreSQL), as a claim locks it: a trial
    claimed meanwhile is no longer WAITING when the lock is granted, and is passed over."""
    from optuna.storages._rdb.models import TrialModel, TrialSystemAttributeModel

    trials = TrialModel.__table__
    attrs = TrialSystemAttributeModel.__table__
    query = (
        sqlalchemy.select(trials.c.trial_id)
        .where(
            trials.c.study_id == study_id,
            trials.c.state == TrialState.WAITING,
            ~_has_fixed_params(trials),
        )
        .order_by(trials.c.number)
        .limit(len(fixed))
        .with_for_update(of=trials)
    )
    ids = list(session.execute(query).scalars())
    rows = [
        {"trial_id": id_, "key": FIXED_PARAMS, "value_json": json.dumps(dict(params))}
        for id_, params in zip(ids, fixed, strict=False)
    ]
    if rows:
        session.execute(sqlalchemy.insert(attrs), rows)
    return len(rows)


def write_study_user_attrs(
    storage: optuna.storages.RDBStorage, study_id: int, attrs: Mapping[str, Any]
) -> None:
    """Write several user attrs of a study in one transaction (Optuna commits each)."""
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(storage.scoped_session) as session:
        _upsert_study_user_attrs(storage, session, study_id, attrs)


def _upsert_in_one_statement(
    storage: optuna.storages.RDBStorage, session: Any, model: Any, owner: Any, rows: list[Any]
) -> bool:
    """Insert-or-update attr rows (unique on owner and key) in one statement where the
    dialect has it (SQLite, PostgreSQL); False elsewhere, for the caller's row-by-row way."""
    dialect = storage.engine.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        return False
    insert = _dialect_insert(dialect)(model).values(rows)
    session.execute(
        insert.on_conflict_do_update(
            index_elements=[owner, model.key], set_={"value_json": insert.excluded.value_json}
        )
    )
    return True


def _upsert_study_user_attrs(
    storage: optuna.storages.RDBStorage, session: Any, study_id: int, attrs: Mapping[str, Any]
) -> None:
    from optuna.storages._rdb import models

    if not attrs:
        return
    model = models.StudyUserAttributeModel
    rows = [{"study_id": study_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()]
    if _upsert_in_one_statement(storage, session, model, model.study_id, rows):
        return
    study = models.StudyModel.find_or_raise_by_id(study_id, session)
    for row in rows:  # MySQL and others: Optuna's own lookup, one attr at a time
        found = model.find_by_study_and_key(study, row["key"], session)
        if found is None:
            session.add(model(**row))
        else:
            found.value_json = row["value_json"]


# A trial system attr set to null: as optuna-dashboard writes it (the JSON text "null",
# encoded once more like every attr value), and a plain JSON null.
REMOVED_JSON = (json.dumps(json.dumps(None)), json.dumps(None))


def trial_attrs_with_prefix(
    storage: optuna.storages.RDBStorage, study_id: int, prefix: str
) -> list[tuple[int, int, TrialState, float | None, str, str]]:
    """(trial id, number, state, value, key, value JSON) of a study's non-null trial system
    attrs whose key starts with `prefix`, in one statement: only those rows are read, however
    many trials the study holds. The value is the trial's first objective (None: none yet).
    """
    from optuna.storages._rdb.models import (
        TrialModel,
        TrialSystemAttributeModel,
        TrialValueModel,
    )

    trials = TrialModel.__table__
    attrs = TrialSystemAttributeModel.__table__
    values = TrialValueModel.__table__
    query = (
        sqlalchemy.select(
            trials.c.trial_id,
            trials.c.number,
            trials.c.state,
            values.c.value,
            values.c.value_type,
            attrs.c.key,
            attrs.c.value_json,
        )
        .select_from(
            attrs.join(trials, attrs.c.trial_id == trials.c.trial_id).outerjoin(
                values,
                sqlalchemy.and_(values.c.trial_id == trials.c.trial_id, values.c.objective == 0),
            )
        )
        .where(
            trials.c.study_id == study_id,
            attrs.c.key.startswith(prefix, autoescape=True),
            attrs.c.value_json.not_in(REMOVED_JSON),
        )
    )
    with storage.engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        (
            trial,
            number,
            TrialState(state) if not isinstance(state, TrialState) else state,
            None if kind is None else TrialValueModel.stored_repr_to_value(value, kind),
            key,
            meta,
        )
        for trial, number, state, value, kind, key, meta in rows
    ]


def clear_trial_system_attr(storage: optuna.storages.RDBStorage, trial_id: int, key: str) -> None:
    """Set a trial system attr to the JSON text "null", also on a finished trial (which Optuna
    refuses to update): how optuna-dashboard marks an artifact it removed."""
    from optuna.storages._rdb.models import TrialSystemAttributeModel

    attrs = TrialSystemAttributeModel.__table__
    update = (
        sqlalchemy.update(attrs)
        .where(attrs.c.trial_id == trial_id, attrs.c.key == key)
        .values(value_json=REMOVED_JSON[0])
    )
    with storage.engine.begin() as connection:
        connection.execute(update)


def annotate_finished_trial(
    storage: optuna.storages.RDBStorage, trial_id: int, attrs: Mapping[str, Any]
) -> None:
    """Write user attrs of a trial whatever its state (Optuna refuses a finished one): for
    results obtained after the trial, such as a retrain of its configuration."""
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(storage.scoped_session) as session:
        _upsert_user_attrs(storage, session, trial_id, attrs)


def _dialect_insert(dialect: str) -> Any:
    """The INSERT construct with ON CONFLICT of SQLite or PostgreSQL."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    return insert


def set_user_attrs(trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
    """Record several user attrs of a running trial: one transaction on a relational storage.

    The Trial's own copy of its attrs is updated too, as Trial.set_user_attr does.
    """
    storage = rdb_storage(study_storage(trial.study))
    if storage is None or not hasattr(storage, "scoped_session"):
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return
    writer = getattr(storage, "set_trial_user_attrs", None)  # hpo's storage retries it
    if writer is not None:
        writer(trial_id(trial), dict(attrs))
    else:
        write_user_attrs(storage, trial_id(trial), attrs)
    trial._cached_frozen_trial.user_attrs.update(attrs)


# The trial system attr of Optuna's constraint values, as a list (what the samplers'
# constraints_func wrote); optuna.study._constrained_optimization._CONSTRAINTS_KEY.
CONSTRAINTS_ATTR = "constraints"


def set_constraints(trial: optuna.Trial, values: Sequence[float]) -> None:
    """Record a running trial's constraint values (<= 0 feasible) in one write.

    As the list `constraints` attr, not Trial.set_constraint's one attr per key (a read and
    a write each): Optuna's samplers and best_trials read both forms, optuna-dashboard
    only the list. constraints_func, which wrote the list, is deprecated in Optuna 5.
    """
    listed = [float(value) for value in values]
    study_storage(trial.study).set_trial_system_attr(trial_id(trial), CONSTRAINTS_ATTR, listed)
    trial._cached_frozen_trial.system_attrs[CONSTRAINTS_ATTR] = listed


def cached_storage(storage: BaseStorage) -> BaseStorage:
    """The storage wrapped in Optuna's per-process trial cache (RDBStorage only), as
    run_grpc_proxy_server's documentation asks of a served storage."""
    return optuna.storages.get_storage(storage)


def add_storage_service(server: Any, storage: BaseStorage) -> None:
    """Serve Optuna's gRPC storage service for `storage` on `server` (a grpc.Server)."""
    from optuna.storages._grpc.auto_generated import api_pb2_grpc
    from optuna.storages._grpc.servicer import OptunaStorageProxyService

    api_pb2_grpc.add_StorageServiceServicer_to_server(OptunaStorageProxyService(storage), server)


def proxy_client_parts(channel: Any) -> tuple[Any, Any]:
    """The stub and cache Optuna's GrpcStorageProxy keeps (`_stub`, `_cache`), on `channel`:
    what its `_setup` builds, for a channel it cannot build itself (TLS)."""
    from optuna.storages._grpc.auto_generated import api_pb2_grpc
    from optuna.storages._grpc.client import GrpcClientCache

    stub = api_pb2_grpc.StorageServiceStub(channel)
    return stub, GrpcClientCache(stub)
