"""hpo.storage.driver_errors: what a driver's error means (away, busy, refusing writes)."""

from __future__ import annotations

import optuna
import psycopg
import pytest
import sqlalchemy

from hpo.storage.driver_errors import failure_message, is_transient, server_busy, write_refused


def _wrapped(message: str, kind: type[Exception] = Exception) -> Exception:
    """What Optuna raises for a driver error: StorageInternalError from SQLAlchemy's."""
    cause = sqlalchemy.exc.OperationalError("SELECT 1", {}, kind(message))
    try:
        raise optuna.exceptions.StorageInternalError("failed") from cause
    except optuna.exceptions.StorageInternalError as exc:
        return exc


@pytest.mark.parametrize(
    "message",
    [
        'connection failed: FATAL:  too many connections for role "hpo"',
        "connection failed: FATAL:  sorry, too many clients already",  # SQLSTATE 53300
        "FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute",
        "FATAL:  the database system is starting up",
    ],
)
def test_a_full_or_starting_server_is_busy(message: str) -> None:
    assert server_busy(_wrapped(message, psycopg.OperationalError))


@pytest.mark.parametrize(
    "message",
    [
        'FATAL:  password authentication failed for user "hpo"',
        'FATAL:  database "nope" does not exist',
        "connection refused",
    ],
)
def test_errors_that_waiting_cannot_fix_are_not_busy(message: str) -> None:
    assert not server_busy(_wrapped(message, psycopg.OperationalError))


@pytest.mark.parametrize(
    "message", ["database or disk is full", "attempt to write a readonly database"]
)
def test_a_file_that_refuses_writes_is_not_transient_and_says_so(message: str) -> None:
    error = _wrapped(message)
    assert write_refused(error) and not is_transient(error)
    line = failure_message("sqlite:////data/hpo.db", error)
    assert line.startswith(f"cannot write to storage sqlite:////data/hpo.db: {message}; free")


def test_a_lost_connection_is_transient_and_unreachable() -> None:
    error = _wrapped("server closed the connection unexpectedly")
    assert is_transient(error) and not write_refused(error)
    assert failure_message("sqlite:///x.db", error).startswith("cannot reach storage")
