"""The one place that reaches into Optuna's private API.

Optuna offers no public way to get a study's storage or id, a trial's id, to wrap the
private RDBStorage methods its per-process cache calls, to list studies whose attrs do
not parse, to count a study's trials without reading them all, or to write several attrs
of a trial in one transaction. hpo needs each of these; every other module goes through
the functions here, and `tests/hpo/test_optuna_internals.py` checks that each name still
exists in the installed Optuna, so an upgrade that removes one fails a test instead of
breaking a worker silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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
    optuna.Trial: ("_trial_id", "_cached_frozen_trial"),
}

# Private names of optuna.storages._rdb (module attributes and RDBStorage methods) that
# count a study's trials in SQL and write a trial's attrs in one session.
RDB_MODULE_NAMES: dict[str, tuple[str, ...]] = {
    "optuna.storages._rdb.storage": ("_create_scoped_session",),
    "optuna.storages._rdb.models": (
        "TrialModel",
        "TrialSystemAttributeModel",
        "TrialUserAttributeModel",
    ),
}
# Private RDBStorage methods called inside a session of hpo's (never retried on their own).
RDB_SESSION_METHODS: tuple[str, ...] = ("_set_trial_attr_without_commit",)
# Optuna's per-process cache (optuna.storages._CachedStorage) keeps the RDBStorage here.
CACHED_STORAGE_ATTRIBUTES: tuple[str, ...] = ("_backend",)


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
    model = models.TrialUserAttributeModel
    with _create_scoped_session(storage.scoped_session) as session:
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
        storage.check_trial_is_updatable(trial_id, trial.state)
        rows = [
            {"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()
        ]
        dialect = storage.engine.dialect.name
        if dialect in ("sqlite", "postgresql"):
            insert = _dialect_insert(dialect)(model).values(rows)
            session.execute(
                insert.on_conflict_do_update(
                    index_elements=[model.trial_id, model.key],
                    set_={"value_json": insert.excluded.value_json},
                )
            )
            return
        for row in rows:  # MySQL and others: Optuna's own upsert, one attr at a time
            storage._set_trial_attr_without_commit(
                session, model, trial_id, row["key"], attrs[row["key"]]
            )


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
