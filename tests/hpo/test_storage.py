"""Storage: passwords masked, retries through a lost connection, one-line failures."""

from __future__ import annotations

import optuna
import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from hpo.errors import StorageError
from hpo.storage import ResilientRDBStorage, _retrying, mask_url, open_storage, scrub

PASSWORD = "pw-Rt5-secret"


def test_mask_url_and_scrub_hide_the_password() -> None:
    url = f"postgresql://hpo:{PASSWORD}@db/hpo"
    assert mask_url(url) == "postgresql://hpo:***@db/hpo"
    assert PASSWORD not in mask_url("not a url://hpo:" + PASSWORD + "@db")
    assert scrub(f"failed for {PASSWORD}", url) == "failed for ***"


def test_transient_errors_are_retried_and_others_are_not(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = open_storage(sqlite_url)
    assert isinstance(storage, ResilientRDBStorage)
    monkeypatch.setattr("hpo.storage.time.sleep", lambda _: None)
    calls: list[int] = []

    def flaky(self: ResilientRDBStorage) -> str:
        calls.append(1)
        if len(calls) < 3:  # what Optuna raises when the server went away
            cause = sqlalchemy.exc.OperationalError("SELECT", {}, Exception("server closed"))
            raise optuna.exceptions.StorageInternalError("commit failed") from cause
        return "ok"

    assert _retrying(flaky, "flaky")(storage) == "ok"
    assert len(calls) == 3

    def broken(self: ResilientRDBStorage) -> str:
        calls.append(1)
        raise ValueError("a real bug")

    calls.clear()
    with pytest.raises(ValueError):
        _retrying(broken, "broken")(storage)
    assert len(calls) == 1


def test_retries_give_up_with_one_line_without_password(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    storage.retry_seconds = 0.0
    storage.url = f"postgresql+psycopg://hpo:{PASSWORD}@db/hpo"

    def down(self: ResilientRDBStorage) -> None:
        raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("connection refused"))

    with pytest.raises(StorageError) as info:
        _retrying(down, "down")(storage)
    message = str(info.value)
    assert "connection refused" in message and "gave up" in message
    assert PASSWORD not in message and "\n" not in message


@pytest.mark.postgres
def test_storage_survives_terminated_connections(
    postgres_url: str, pg_admin: sqlalchemy.Engine
) -> None:
    storage = open_storage(postgres_url)
    study = optuna.create_study(study_name="s", storage=storage)
    study.enqueue_trial({})
    database = make_url(postgres_url).database
    with pg_admin.connect() as connection:
        connection.execute(
            sqlalchemy.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"
            ),
            {"d": database},
        )
    trial = study.ask()
    study.tell(trial, 1.0)
    assert [t.value for t in study.get_trials()] == [1.0]


@pytest.mark.postgres
def test_unreachable_postgres_is_a_one_line_storage_error() -> None:
    with pytest.raises(StorageError) as info:
        open_storage(f"postgresql://hpo:{PASSWORD}@127.0.0.1:9/hpo")
    assert PASSWORD not in str(info.value)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("cannot reach storage postgresql+psycopg://hpo:***@")
