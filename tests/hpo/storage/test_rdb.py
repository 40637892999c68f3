"""Storage: passwords masked, retries through a lost connection or a full server,
one-line failures, and a cap on retrying the trials of dead workers."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from hpo.config.spec import load_spec
from hpo.errors import StorageError
from hpo.runtime.worker import claim_trial, heartbeat, run_worker
from hpo.storage.open import open_storage
from hpo.storage.rdb import ResilientRDBStorage, _retrying
from hpo.storage.stale import MAX_RETRY
from hpo.storage.urls import scrub
from hpo.study.create import open_study
from hpo.study.records import budget_of, counted_trials
from tests.helpers import WAIT_SECONDS, hpo_env, run_hpo, wait_for, worker_settings, zero_cost

PASSWORD = "pw-Rt5-secret"


def test_transient_errors_are_retried_and_others_are_not(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = open_storage(sqlite_url)
    assert isinstance(storage, ResilientRDBStorage)
    monkeypatch.setattr("hpo.storage.rdb.time.sleep", lambda _: None)
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


# ---------------------------------------------------------------- malformed URLs


def test_malformed_url_is_one_line_without_password_through_the_cli(tmp_path: Path) -> None:
    url = f"postgresql://u:{PASSWORD}@host:notaport/db"  # was: a ValueError traceback
    run = run_hpo("--storage", url, "studies", cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("error: malformed storage URL 'postgresql://***@host:notaport")
    assert len(run.stderr.strip().splitlines()) == 1
    assert "Traceback" not in run.stderr
    assert PASSWORD not in run.stdout + run.stderr
    assert PASSWORD not in scrub(f"boom {PASSWORD}", url)


def test_a_bad_retry_setting_leaves_no_sqlite_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPO_DB_RETRY_SECONDS", "abc")
    with pytest.raises(StorageError, match="HPO_DB_RETRY_SECONDS='abc': expected a number"):
        open_storage(f"sqlite:///{tmp_path / 'hpo.db'}")
    assert list(tmp_path.iterdir()) == []  # was: an empty hpo.db


# ---------------------------------------------------------------- the first connection


def test_missing_database_or_role_fails_at_once_without_retrying(
    pg_admin: sqlalchemy.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPO_DB_RETRY_SECONDS", "600")
    sleeps: list[float] = []
    monkeypatch.setattr("hpo.storage.rdb.time.sleep", sleeps.append)
    server = pg_admin.url.set(password=PASSWORD)
    for url, problem in [
        (server.set(database="hpo_no_such_database"), "does not exist"),
        (server.set(username="hpo_no_such_role"), "does not exist"),
    ]:
        with pytest.raises(StorageError) as info:
            open_storage(url.render_as_string(hide_password=False))
        message = str(info.value)
        assert problem in message and "\n" not in message and PASSWORD not in message
    assert sleeps == []  # not transient: no retry


def test_pool_size_is_a_setting_and_defaults_to_two_connections(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HPO_DB_POOL_SIZE", raising=False)
    pool = open_storage(postgres_url).engine.pool
    assert (pool.size(), pool._max_overflow) == (1, 1)  # at most 2 connections
    monkeypatch.setenv("HPO_DB_POOL_SIZE", "4")
    pool = open_storage(postgres_url).engine.pool
    assert pool.size() + pool._max_overflow == 4
    for bad in ("1", "many"):
        monkeypatch.setenv("HPO_DB_POOL_SIZE", bad)
        with pytest.raises(StorageError, match="HPO_DB_POOL_SIZE"):
            open_storage(postgres_url)


@pytest.fixture
def limited_role(pg_admin: sqlalchemy.Engine, postgres_url: str) -> Iterator[str]:
    """A role that may hold 2 connections (a worker's most), with rights on the tables."""
    role = f"hpo_limited_{uuid.uuid4().hex[:8]}"
    database = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    open_storage(postgres_url)  # the tables, created by the owner
    with pg_admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 2")
    with database.connect() as connection:
        connection.exec_driver_sql(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        connection.exec_driver_sql(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
    yield make_url(postgres_url).set(username=role).render_as_string(hide_password=False)
    with pg_admin.connect() as connection:
        connection.execute(
            sqlalchemy.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"
            ),
            {"r": role},
        )
    with database.connect() as connection:
        connection.exec_driver_sql(f"DROP OWNED BY {role}")
    database.dispose()
    with pg_admin.connect() as connection:
        connection.exec_driver_sql(f"DROP ROLE {role}")


def test_worker_waits_for_a_full_database_and_does_its_work(
    limited_role: str, postgres_url: str, write_study, tmp_path: Path
) -> None:
    """Was: `too many connections`, exit 2, at once (the first connection was not retried)."""
    study = open_study(open_storage(postgres_url), load_spec(write_study("full", trials=2)))
    holder = sqlalchemy.create_engine(limited_role, poolclass=sqlalchemy.pool.NullPool)
    held = [holder.connect() for _ in range(2)]  # the role's limit: the server is full
    log = tmp_path / "worker.log"
    env = hpo_env({**worker_settings(limited_role), "HPO_DB_RETRY_SECONDS": "120"})
    with open(log, "w") as stderr:
        worker = subprocess.Popen(
            [sys.executable, "-m", "hpo", "worker", "--study", "full", "--gpus", "none"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_for(lambda: "too many connections" in log.read_text(), "the worker to be refused")
        for connection in held:  # make room: the waiting worker connects
            connection.close()
        worker.wait(timeout=WAIT_SECONDS)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        holder.dispose()
    assert worker.returncode == 0, log.read_text()
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 2


def test_a_failing_heartbeat_is_logged_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    class Down:
        def get_heartbeat_interval(self) -> float:
            return 0.01

        def record_heartbeat_once(self, trial_id: int) -> None:
            raise sqlalchemy.exc.OperationalError("UPDATE", {}, Exception("server closed"))

    with caplog.at_level(logging.WARNING, logger="hpo.runtime.worker"), heartbeat(Down(), 5):  # type: ignore[arg-type]
        wait_for(lambda: caplog.records, "a logged heartbeat failure")
    assert caplog.records[0].levelno == logging.WARNING
    assert "heartbeat of trial 5 failed" in caplog.records[0].getMessage()


# ---------------------------------------------------------------- trials of dead workers


def test_a_trial_whose_workers_keep_dying_is_failed_with_the_reason(
    sqlite_url: str, write_study
) -> None:
    storage = open_storage(sqlite_url, heartbeat_interval=1, grace_period=1)
    study = open_study(storage, load_spec(write_study("dies", trials=1)))
    for _ in range(MAX_RETRY + 1):
        trial = claim_trial(study, storage)  # beats once, then its worker "dies"
        assert trial is not None
        trial.suggest_float("x", 0.0, 1.0)
        wait_for(lambda t=trial: _failed_as_stale(study, t), "the stale trial to be failed")

    report = run_worker(storage, "dies", objective_factory=zero_cost())

    assert report.trials == 0  # nothing was queued again
    trials = study.get_trials()
    assert len(trials) == MAX_RETRY + 2  # four dead attempts and the record that says why
    (final,) = counted_trials(trials)
    assert final.state == TrialState.FAIL
    assert final.params == trials[0].params
    reason = final.user_attrs["fail_reason"]
    assert reason.startswith(f"worker died; these params ran {MAX_RETRY + 1} times")
    assert reason.endswith("not retried again")
    assert budget_of(study).done


def _failed_as_stale(study: optuna.Study, trial: optuna.Trial) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # what an idle worker does
    return study.get_trials()[trial.number].state == TrialState.FAIL


# ---------------------------------------------------------------- a disk that refuses writes


@pytest.mark.parametrize(
    "reason", ["database or disk is full", "attempt to write a readonly database"]
)
def test_a_full_disk_or_read_only_file_is_said_at_once_not_retried(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, reason: str
) -> None:
    """Was: "cannot reach storage ... check that the database server is running", retried
    for HPO_DB_RETRY_SECONDS (5 minutes) first."""
    storage = open_storage(sqlite_url)
    storage.retry_seconds = 600.0
    sleeps: list[float] = []
    monkeypatch.setattr("hpo.storage.rdb.time.sleep", sleeps.append)

    def refused(self: ResilientRDBStorage) -> None:
        cause = sqlalchemy.exc.OperationalError("INSERT", {}, Exception(reason))
        raise optuna.exceptions.StorageInternalError("commit failed") from cause

    with pytest.raises(StorageError) as info:
        _retrying(refused, "refused")(storage)
    assert str(info.value).startswith(f"cannot write to storage {sqlite_url}: {reason}; free")
    assert sleeps == []


def test_a_real_full_sqlite_file_stops_the_call_in_one_line(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = open_storage(sqlite_url)
    study = optuna.create_study(study_name="s", storage=storage)
    sleeps: list[float] = []
    monkeypatch.setattr("hpo.storage.rdb.time.sleep", sleeps.append)

    @sqlalchemy.event.listens_for(storage.engine, "connect")
    def no_room(dbapi_connection, _record) -> None:  # SQLite's own "disk full", for real
        dbapi_connection.execute("PRAGMA max_page_count = 1")

    storage.engine.dispose()  # new connections get the limit
    with pytest.raises(
        StorageError, match=r"^cannot write to storage .*: database or disk is full"
    ):
        study.set_user_attr("big", "x" * 1_000_000)
    assert sleeps == []


def test_the_kept_models_reads_and_writes_wait_out_an_outage(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen in CI: the keeper read its holders by SQL outside the retries, so a database
    outage at that moment failed the trial with an OperationalError as its reason."""
    storage = open_storage(sqlite_url)
    monkeypatch.setattr("hpo.storage.rdb.time.sleep", lambda _: None)
    calls: list[str] = []

    def away_once(name: str) -> Callable[..., list[tuple[int]]]:
        def call(*_args: object) -> list[tuple[int]]:
            calls.append(name)
            if calls.count(name) == 1:
                raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("server closed"))
            return []

        return call

    monkeypatch.setattr("hpo.storage.rdb.trial_attrs_with_prefix", away_once("read"))
    monkeypatch.setattr("hpo.storage.rdb.clear_trial_system_attr", away_once("clear"))
    assert storage.trial_attrs_with_prefix(1, "artifacts:") == []
    storage.clear_trial_system_attr(1, "artifacts:x")
    assert calls == ["read", "read", "clear", "clear"]
