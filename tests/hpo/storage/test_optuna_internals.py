"""Every private Optuna name hpo relies on (hpo/storage/_optuna.py) exists in the installed Optuna."""

from __future__ import annotations

import importlib
from pathlib import Path

import optuna
import pytest
from optuna.storages import RDBStorage

from hpo.storage import _optuna


@pytest.mark.parametrize("name", _optuna.RDB_PRIVATE_METHODS)
def test_rdb_private_method_exists(name: str) -> None:
    assert callable(getattr(RDBStorage, name, None)), f"RDBStorage.{name} is gone"


@pytest.mark.parametrize("name", _optuna.RDB_SESSION_METHODS)
def test_rdb_session_method_exists(name: str) -> None:
    assert callable(getattr(RDBStorage, name, None)), f"RDBStorage.{name} is gone"


@pytest.mark.parametrize(
    ("module", "name"),
    [(module, name) for module, names in _optuna.RDB_MODULE_NAMES.items() for name in names],
)
def test_rdb_module_name_exists(module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name), f"{module}.{name} is gone"


@pytest.mark.parametrize(
    ("module", "name"),
    [(module, name) for module, names in _optuna.PROXY_MODULE_NAMES.items() for name in names],
)
def test_proxy_module_name_exists(module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name), f"{module}.{name} is gone"


def test_cached_storage_attributes_exist(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'cached.db'}")
    for name in _optuna.CACHED_STORAGE_ATTRIBUTES:
        assert hasattr(study._storage, name), f"_CachedStorage.{name} is gone"
    for name in _optuna.CACHED_STORAGE_METHODS:
        assert callable(getattr(study._storage, name, None)), f"_CachedStorage.{name} is gone"
    assert _optuna.rdb_storage(study._storage) is study._storage._backend


def _instances() -> dict[type, object]:
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    trial = study.ask()
    study.tell(trial, 1.0)
    return {
        optuna.Study: study,
        optuna.Trial: trial,
        optuna.trial.FrozenTrial: study.trials[0],
        optuna.study.StudySummary: optuna.get_all_study_summaries(study._storage)[0],
        RDBStorage: RDBStorage("sqlite:///:memory:"),
    }


def test_instance_attributes_exist() -> None:
    instances = _instances()
    assert set(instances) == set(_optuna.INSTANCE_ATTRIBUTES)
    for owner, names in _optuna.INSTANCE_ATTRIBUTES.items():
        for name in names:
            assert hasattr(instances[owner], name), f"{owner.__name__}.{name} is gone"


def test_accessors_read_the_ids() -> None:
    instances = _instances()
    study = instances[optuna.Study]
    assert _optuna.study_storage(study) is study._storage
    assert _optuna.study_id(study) == _optuna.study_id(instances[optuna.study.StudySummary])
    assert _optuna.trial_id(instances[optuna.Trial]) == _optuna.trial_id(
        instances[optuna.trial.FrozenTrial]
    )


def test_the_constraints_attr_is_optunas() -> None:
    from optuna.study._constrained_optimization import _CONSTRAINTS_KEY

    from hpo.storage._optuna import CONSTRAINTS_ATTR

    assert CONSTRAINTS_ATTR == _CONSTRAINTS_KEY
