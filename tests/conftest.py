"""Shared fixtures: tiny study files and studies, SQLite files, a fresh PostgreSQL database."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy

from tests.helpers import study_text

if TYPE_CHECKING:  # annotations only
    import optuna

PG_ADMIN_URLS = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)

# Optuna's deprecation warnings (FutureWarning) and experimental-feature warnings, as errors
# where hpo's own code calls the API (Optuna attributes them to the caller). CI runs one step
# with HPO_STRICT_WARNINGS=1, so an API Optuna deprecates, or an experimental one used
# without saying so (a catch_warnings that names it), fails there before it changes.
STRICT_WARNINGS = (
    "error::FutureWarning:hpo",
    "error::FutureWarning:models",
    "error::DeprecationWarning:hpo",
    "error::optuna.exceptions.ExperimentalWarning:hpo",
)


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("HPO_STRICT_WARNINGS") == "1":
        for line in STRICT_WARNINGS:
            config.addinivalue_line("filterwarnings", line)


# The space of a study that trains in well under a second per trial on CPU.
TINY_SPACE = """depth = { low = 1, high = 2 }
width = { low = 8, high = 16 }
activation = { choices = ["relu", "tanh"] }
lr = { low = 1e-3, high = 1e-1, log = true }
batch_size = 64"""


def write_tiny_study(
    folder: Path,
    name: str = "tiny",
    *,
    trials: int = 4,
    epochs: int = 2,
    dataset: str = "rings",
    sampler: str = "random",
    pruner: str = "none",
    extra: str = "",
) -> Path:
    """Write a tiny study file into `folder` and return its path (also for fixtures of a
    wider scope than one test, which have no tmp_path)."""
    path = folder / f"{name}.toml"
    data = f'name = "{dataset}"\nmax_train = 300'
    text = study_text(
        name, TINY_SPACE, trials=trials, epochs=epochs, data=data, sampler=sampler, pruner=pruner
    )
    path.write_text(text + extra)
    return path


@pytest.fixture
def write_study(tmp_path: Path) -> Callable[..., Path]:
    """Write a tiny study file into the test's tmp_path (keywords of write_tiny_study)."""
    return functools.partial(write_tiny_study, tmp_path)


@pytest.fixture
def create_study(write_study: Callable[..., Path]) -> Callable[..., optuna.Study]:
    """Create a tiny study in a storage (a URL or an opened one) and return it:
    `create_study(storage, name, **keywords of write_tiny_study)`."""

    def create(
        storage: str | optuna.storages.BaseStorage, name: str = "tiny", **keywords: Any
    ) -> optuna.Study:
        # Imported here: hpo.study.create loads torch, which light test modules never need.
        from hpo.config.spec import load_spec
        from hpo.storage.open import open_storage
        from hpo.study.create import open_study

        if isinstance(storage, str):
            storage = open_storage(storage)
        return open_study(storage, load_spec(write_study(name, **keywords)))

    return create


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An SQLite storage URL in the test's tmp_path (the file is created on first use)."""
    return f"sqlite:///{tmp_path / 'hpo.db'}"


def _admin_engine() -> sqlalchemy.Engine | None:
    for url in PG_ADMIN_URLS:
        engine = sqlalchemy.create_engine(
            url,
            isolation_level="AUTOCOMMIT",
            pool_pre_ping=True,  # survives a server restart made by a test
            connect_args={"connect_timeout": 3},
        )
        try:
            with engine.connect():
                return engine
        except sqlalchemy.exc.OperationalError:
            engine.dispose()
    return None


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sqlalchemy.Engine]:
    engine = _admin_engine()
    if engine is None:
        message = "PostgreSQL is not reachable at 127.0.0.1:5432"
        if os.environ.get("HPO_REQUIRE_POSTGRES"):
            pytest.fail(message + " (HPO_REQUIRE_POSTGRES is set: CI must run these tests)")
        pytest.skip(message)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(pg_admin: sqlalchemy.Engine) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = f"hpo_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield pg_admin.url.set(database=name).render_as_string(hide_password=False)
    with pg_admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
