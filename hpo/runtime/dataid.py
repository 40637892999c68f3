"""The identity of a study's own data set, stored with the study and checked by every
process that joins it: a launch or worker that finds other data under the same path refuses
(one line), so no study mixes trials trained on different data.

Built-in data sets carry no identity (their files are the releases they name).
"""

from __future__ import annotations

from typing import Any

import optuna

from hpo.training.data import Dataset
from hpo.training.userdata import DATA_ATTR, check_identity


def stored_identity(storage: optuna.storages.BaseStorage, study_name: str) -> Any:
    """The identity stored with `study_name`, or None (no such study, or none stored)."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return None
    return storage.get_study_user_attrs(study_id).get(DATA_ATTR)


def check_data(storage: optuna.storages.BaseStorage, study_name: str, data: Dataset) -> None:
    """DataError (one line) if `data` is not what the study was created with."""
    if data.identity is not None:
        stored = stored_identity(storage, study_name)
        check_identity(stored, data.identity, f"study {study_name!r}")


def record_data(study: optuna.Study, data: Dataset) -> None:
    """Store the data's identity with a study that has none yet."""
    if data.identity is not None and DATA_ATTR not in study.user_attrs:
        study.set_user_attr(DATA_ATTR, data.identity)
