"""Storage URL -> Optuna RDBStorage, tuned per backend; passwords never printed.

SQLite (the embedded default) is set up so that several local worker processes can share
one file without "database is locked": WAL journal, a long busy timeout, and every
transaction started with BEGIN IMMEDIATE so that no read-then-write transaction can be
refused mid-way. PostgreSQL (for distributed workers) gets a pre-pinged pool so that
connections broken by a database restart are replaced instead of failing a trial.
"""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from sqlalchemy.engine import URL, make_url

from hpo.errors import StorageError

DEFAULT_STORAGE = "sqlite:///hpo.db"
HEARTBEAT_INTERVAL = 10  # seconds between a running trial's heartbeats
MAX_RETRY = 3  # how often a trial whose worker died is re-queued before it stays failed


def normalize_url(url: str) -> str:
    """Parse a storage URL; a bare postgresql:// uses the psycopg 3 driver hpo ships with."""
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise StorageError(
            f"malformed storage URL {mask_url(url)!r}; expected e.g. sqlite:///hpo.db "
            "or postgresql://user@host/dbname"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StorageError(
            f"unsupported storage {parsed.get_backend_name()!r} in {mask_url(url)!r}; "
            "use sqlite:///FILE or postgresql://user@host/dbname"
        )
    return parsed.render_as_string(hide_password=False)


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, safe for output, logs and errors."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        # Unparseable: hide everything between '://' and '@', where a password would be.
        scheme, sep, rest = url.partition("://")
        return f"{scheme}{sep}***@{rest.rpartition('@')[2]}" if "@" in rest else url


def scrub(message: str, url: str) -> str:
    """Remove the URL's password from a (driver) message."""
    with contextlib.suppress(sqlalchemy.exc.ArgumentError):
        password = make_url(url).password
        if password:
            message = message.replace(str(password), "***")
    return message


def open_storage(
    url: str,
    *,
    heartbeat_interval: int = HEARTBEAT_INTERVAL,
    grace_period: int | None = None,
) -> optuna.storages.RDBStorage:
    """Connect (creating tables if needed); StorageError with one line if that fails.

    A trial whose worker stops sending heartbeats for `grace_period` seconds (default:
    twice the interval) is failed by the next worker that looks, and re-queued.
    """
    url = normalize_url(url)
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        _prepare_sqlite_file(parsed)
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {
            "pool_pre_ping": True,  # replace connections a database restart broke
            "pool_size": 2,
            "max_overflow": 4,
            "connect_args": {"connect_timeout": 10},
        }
    try:
        with warnings.catch_warnings():
            # heartbeat and the retry callback are marked experimental; we rely on them.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=(
                    optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
                ),
            )
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        raise StorageError(_unreachable(url, exc)) from None
    if backend == "sqlite":
        _begin_immediate(storage.engine)
    return storage


def _prepare_sqlite_file(parsed: URL) -> None:
    database = parsed.database
    if not database or database == ":memory:":
        return
    folder = Path(database).expanduser().resolve().parent
    if not folder.is_dir():
        raise StorageError(
            f"cannot open storage {parsed.render_as_string()}: folder {folder} does not exist; "
            "create it or pick another --storage"
        )
    try:
        # WAL lets readers (the dashboard, progress polling) run beside a writer; the
        # setting is stored in the file, so once is enough.
        with contextlib.closing(sqlite3.connect(database, timeout=60)) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as exc:
        raise StorageError(
            f"cannot open storage {parsed.render_as_string()}: {exc}; "
            "check that the file is a writable SQLite database"
        ) from None


def _begin_immediate(engine: sqlalchemy.Engine) -> None:
    """Make every SQLite transaction take the write lock up front (SQLAlchemy's recipe).

    A deferred transaction that reads and then writes is refused at once with "database is
    locked" when another process wrote in between; an immediate one waits its turn instead.
    """
    engine.dispose()  # connections made while Optuna created the tables lack the hooks

    @sqlalchemy.event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin(connection: sqlalchemy.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _unreachable(url: str, exc: BaseException) -> str:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return scrub(
        f"cannot reach storage {mask_url(url)}: {reason}; check the URL (--storage or "
        "HPO_STORAGE), that the database server is running and that it accepts this user",
        url,
    )


@contextlib.contextmanager
def study_lock(storage: optuna.storages.RDBStorage, study_name: str) -> Iterator[None]:
    """Serialize study creation and budget top-ups across processes (and hosts).

    PostgreSQL: a session advisory lock, so launches on different machines agree.
    SQLite: a lock file beside the database (SQLite is single-host anyway).
    """
    url = make_url(storage.url)
    if url.get_backend_name() == "postgresql":
        key = zlib.crc32(f"hpo:{study_name}".encode())
        with storage.engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            connection.commit()  # the lock is session-wide; end the transaction
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                connection.commit()
        return
    database = url.database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(f"{Path(database).expanduser().resolve()}-lock")  # beside -wal, -shm
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
