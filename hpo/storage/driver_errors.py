"""What a database driver's error means for hpo, and how it reads in one line.

Optuna wraps driver errors in StorageInternalError; these functions look through the
wrapper to tell "the database is away" (wait and retry) from "the server is full or
starting" (wait at the first connection too) and from errors that retrying cannot fix.
"""

from __future__ import annotations

import optuna
import sqlalchemy

from hpo.storage.urls import mask_url, scrub

# What a server says when it is there but cannot take a connection now (connection limit
# reached, starting up, shutting down): worth waiting for, even at the first connection.
BUSY_SERVER = (
    "too many connections",  # a role's or a database's connection limit
    "sorry, too many clients already",  # max_connections (SQLSTATE 53300), superusers too
    "remaining connection slots are reserved",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
)
# What SQLite says when it reaches its file but cannot write to it: no wait fixes that, so
# it is said at once rather than retried as "unreachable" for HPO_DB_RETRY_SECONDS.
WRITE_REFUSED = ("database or disk is full", "attempt to write a readonly database")


def is_transient(exc: BaseException) -> bool:
    """True for errors that mean "the database is away", not "the request is wrong".

    Optuna wraps driver errors in StorageInternalError; the cause tells which kind it was.
    OperationalError covers refused connections, a server shutting down or starting up and
    connections it terminated; InterfaceError a connection already closed under us.
    """
    if write_refused(exc):  # an OperationalError too, but one that waiting cannot fix
        return False
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            return True
        current = current.__cause__ or current.__context__
    return False


def server_busy(exc: BaseException) -> bool:
    """True when the server answered but cannot take a connection now (full, starting up).

    Only these are waited for at the first connection: a refused connection, a wrong
    password, host or port, or a missing database or role are reported at once, since
    retrying would only delay the one-line error. psycopg gives no SQLSTATE for a failed
    connection, hence the server's wording.
    """
    text = driver_reason(exc).lower()
    return any(phrase in text for phrase in BUSY_SERVER)


def write_refused(exc: BaseException) -> bool:
    """True when the database file cannot be written: its disk is full or it is read-only."""
    text = driver_reason(exc).lower()
    return any(phrase in text for phrase in WRITE_REFUSED)


def sqlite_locked(exc: BaseException) -> bool:
    return "database is locked" in str(getattr(exc, "orig", None) or exc).lower()


def lost_table_creation_race(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", None) or exc).lower()
    return "already exists" in text or "duplicate key" in text or "unique" in text


def driver_reason(exc: BaseException) -> str:
    """First line of the driver's message (Optuna's wrapper says nothing useful)."""
    cause: BaseException = exc
    if isinstance(exc, optuna.exceptions.StorageInternalError) and exc.__cause__ is not None:
        cause = exc.__cause__
    text = str(getattr(cause, "orig", None) or cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__


def failure_message(url: str, exc: BaseException) -> str:
    """One line for a storage call that failed for good: a file that refuses writes, or a
    database that cannot be reached."""
    if write_refused(exc):
        return scrub(
            f"cannot write to storage {mask_url(url)}: {driver_reason(exc)}; free space on its "
            "disk, or make the file and its folder writable, then run the command again",
            url,
        )
    return unreachable_message(url, exc)


def unreachable_message(url: str, exc: BaseException) -> str:
    reason = driver_reason(exc)
    return scrub(
        f"cannot reach storage {mask_url(url)}: {reason}; check the URL (--storage or "
        "HPO_STORAGE), that the database server is running and that it accepts this user",
        url,
    )
