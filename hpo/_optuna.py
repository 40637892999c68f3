"""The one place that reaches into Optuna's private API.

Optuna offers no public way to get a study's storage or id, a trial's id, to wrap the
private RDBStorage methods its per-process cache calls, or to list studies whose attrs
do not parse. hpo needs each of these; every other module goes through the functions
here, and `tests/hpo/test_optuna_internals.py` checks that each name still exists in
the installed Optuna, so an upgrade that removes one fails a test instead of breaking a
worker silently.
"""

from __future__ import annotations

import optuna
import sqlalchemy
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

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
    optuna.Trial: ("_trial_id",),
    FrozenTrial: ("_trial_id",),
    optuna.study.StudySummary: ("_study_id",),
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
