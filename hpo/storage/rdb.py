"""A SQLite or PostgreSQL storage, tuned per backend; passwords never printed.

SQLite (the embedded default) is set up so that several local worker processes can share
one file without "database is locked": WAL journal, a long busy timeout, and every
transaction started with BEGIN IMMEDIATE so that no read-then-write transaction can be
refused mid-way. PostgreSQL (for distributed workers) gets a small pool (at most two
connections a process) whose idle connections are pinged before use, so that connections
broken by a database restart are replaced instead of failing a trial, and every storage
call is retried with backoff while the database is away (ResilientRDBStorage), so a restart
delays a study instead of failing its trials; a server that is full or starting up is
waited for at the first connection too. Which storage a URL opens: hpo.storage.open;
what a URL is and how it is shown: hpo.storage.urls; what a driver error means:
hpo.storage.driver_errors.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import platform
import sqlite3
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import optuna
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import URL, make_url

from hpo.config.settings import HEARTBEAT_INTERVAL
from hpo.errors import StorageError
from hpo.storage._optuna import (
    RDB_PRIVATE_METHODS,
    claim_next_waiting_trial,
    claim_waiting_trial,
    clear_trial_system_attr,
    trial_attrs_with_prefix,
    waiting_trial_ids,
    write_trial_params,
    write_user_attrs,
)
from hpo.storage.driver_errors import (
    driver_reason,
    failure_message,
    is_transient,
    lost_table_creation_race,
    server_busy,
    sqlite_locked,
    unreachable_message,
    write_refused,
)
from hpo.storage.locks import LockedCall, Request, study_lock
from hpo.storage.retry import (
    DB_RETRY_SECONDS,
    STORAGE_CALLS,
    backoff_delays,
    retry_seconds,
    retrying,
)
from hpo.storage.stale import MAX_RETRY, StaleTrialRetry
from hpo.storage.urls import mask_url, normalize_url, scrub

POOL_SIZE = 2  # connections a process may hold: the main thread and the heartbeat thread
CREATE_ATTEMPTS = 5  # tries at connecting while other processes create the tables
SCHEMA_LOCK_KEY = zlib.crc32(b"hpo:schema")  # advisory lock around Optuna's table creation
# A pooled PostgreSQL connection idle this long is pinged before use (_ping_idle_connections).
PING_IDLE_SECONDS = 1.0
_IDLE_SINCE = "hpo_idle_since"  # its key in the pool's per-connection info

log = logging.getLogger("hpo.storage.rdb")
_T = TypeVar("_T")


def _gave_up(storage: ResilientRDBStorage, exc: BaseException) -> str:
    return unreachable_message(storage.url, exc) + f" (gave up after {storage.retry_seconds:g} s)"


def _warn(storage: ResilientRDBStorage, name: str, exc: BaseException, delay: float) -> None:
    log.warning(
        "storage unreachable during %s (%s); retrying in %.1f s",
        name,
        scrub(driver_reason(exc), storage.url),
        delay,
    )


def _retrying(method: Callable[..., _T], name: str) -> Callable[..., _T]:
    """A database call that waits out a restart (lost or refused connections), and says at
    once, in one line, that a full disk or a read-only file refused a write."""
    retried = retrying(method, name, retryable=is_transient, give_up=_gave_up, warn=_warn)

    @functools.wraps(method)
    def call(self: ResilientRDBStorage, *args: Any, **kwargs: Any) -> _T:
        try:
            return retried(self, *args, **kwargs)
        except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
            if write_refused(exc):
                raise StorageError(failure_message(self.url, exc)) from None
            raise

    return call


class ResilientRDBStorage(optuna.storages.RDBStorage):
    """RDBStorage whose calls wait out a database restart instead of failing.

    Each public call is retried with exponential backoff while the error is a lost or
    refused connection (pre-ping already replaces connections that died while idle in the
    pool). A state change whose commit reached the database but whose answer was lost is
    recognised on the retry, so a restart cannot turn a successful `tell` into an error.
    """

    retry_seconds: float = DB_RETRY_SECONDS

    def _already_set(self, trial_id: int, state: TrialState, values: Any = None) -> bool | None:
        """After a lost answer: True if the trial is already in `state` (with `values`)."""
        stored = optuna.storages.RDBStorage.get_trial(self, trial_id)
        if stored.state != state:
            return None
        if state == TrialState.RUNNING:
            return None  # cannot tell our claim from another worker's: let it report False
        if values is not None and list(stored.values or []) != list(values):
            return None
        return True

    def record_heartbeat_once(self, trial_id: int) -> None:
        """One heartbeat without retrying: the heartbeat thread has its own loop."""
        optuna.storages.RDBStorage.record_heartbeat(self, trial_id)

    def set_trial_params(self, trial_id: int, rows: list[tuple[str, float, Any, Any]]) -> None:
        """Write several params of a running trial in one transaction (a retry after a lost
        answer finds them written: Optuna's integrity errors are ignored, as for one)."""
        write_trial_params(self, trial_id, rows)

    def set_trial_user_attrs(self, trial_id: int, attrs: dict[str, Any]) -> None:
        """Write several user attrs of a running trial in one transaction (an upsert, so a
        retry after a lost answer writes the same)."""
        write_user_attrs(self, trial_id, attrs)

    def waiting_trial_ids(self, study_id: int) -> tuple[list[int], list[int]]:
        """Ids of the study's queued trials, (with fixed params, the others), each in number
        order: one short read."""
        return waiting_trial_ids(self, study_id)

    def trial_attrs_with_prefix(self, study_id: int, prefix: str) -> list[tuple[Any, ...]]:
        """The study's trial system attrs whose key starts with `prefix`: one short read."""
        return trial_attrs_with_prefix(self, study_id, prefix)

    def clear_trial_system_attr(self, trial_id: int, key: str) -> None:
        """Set a trial's system attr to null, as optuna-dashboard does for a removed file."""
        clear_trial_system_attr(self, trial_id, key)

    def run_locked(self, call: LockedCall, request: Request) -> Request:
        """Run a study operation here, under the study's lock (a proxy runs it on its side)."""
        with study_lock(self, request["study"]):
            return call.run(self, request)

    def claim_waiting_trial(self, trial_id: int, attrs: dict[str, Any]) -> bool:
        """WAITING -> RUNNING with the trial's first heartbeat and `attrs`, one transaction.

        After a lost answer the retry finds the trial RUNNING and reports False, as a
        retried set_trial_state_values does: the claim's own heartbeat then lets the trial
        go stale and be re-queued, so nothing is lost.
        """
        heartbeat = self.get_heartbeat_interval() is not None
        return claim_waiting_trial(self, trial_id, attrs, heartbeat=heartbeat)

    def claim_next_waiting_trial(
        self, study_id: int, attrs: dict[str, Any]
    ) -> tuple[int, FrozenTrial | None] | None:
        """Pick, claim (RUNNING, first heartbeat, `attrs`) and return the study's next queued
        trial in one transaction; None if none is queued. After a lost answer the retry
        claims the next one: the first, RUNNING with its heartbeat, goes stale and is
        re-queued, as after claim_waiting_trial."""
        heartbeat = self.get_heartbeat_interval() is not None
        return claim_next_waiting_trial(self, study_id, attrs, heartbeat=heartbeat)


for _name in (
    *STORAGE_CALLS,
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "get_trial_param",
    "get_best_trial",
    "record_heartbeat",
    # Optuna's per-process cache (_CachedStorage) calls these private ones directly.
    *RDB_PRIVATE_METHODS,
):
    setattr(
        ResilientRDBStorage,
        _name,
        _retrying(getattr(optuna.storages.RDBStorage, _name), _name),
    )

# hpo's own: one transaction each, and a locked study operation (counted again on a retry)
for _name in (
    "set_trial_user_attrs",
    "set_trial_params",
    "claim_waiting_trial",
    "claim_next_waiting_trial",
    "waiting_trial_ids",
    "trial_attrs_with_prefix",
    "clear_trial_system_attr",
    "run_locked",
):
    setattr(ResilientRDBStorage, _name, _retrying(getattr(ResilientRDBStorage, _name), _name))


def _pool_size() -> int:
    text = os.environ.get("HPO_DB_POOL_SIZE")
    if not text:
        return POOL_SIZE
    try:
        size = int(text)
    except ValueError:
        size = 0
    if size < POOL_SIZE:
        # Fewer would deadlock: the study lock holds one connection while the calls it
        # guards need another.
        raise StorageError(f"HPO_DB_POOL_SIZE={text!r}: expected a whole number >= {POOL_SIZE}")
    return size


def open_database(
    url: str,
    *,
    heartbeat_interval: int = HEARTBEAT_INTERVAL,
    grace_period: int | None = None,
    pool_size: int | None = None,
) -> ResilientRDBStorage:
    """Connect (creating tables if needed); StorageError with one line if that fails.

    A trial whose worker stops sending heartbeats for `grace_period` seconds (default:
    twice the interval) is failed by the next worker that looks, and re-queued. A server
    that answers "too many connections" (or "starting up") is waited for, like every later
    call, for HPO_DB_RETRY_SECONDS; any other failure to connect is reported at once. A
    process holds at most HPO_DB_POOL_SIZE connections to PostgreSQL (default 2; `pool_size`
    raises it for the one process that serves many, `hpo proxy`).
    """
    url = normalize_url(url)
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    wait_seconds = retry_seconds()  # a bad setting is refused before a file is created
    if backend == "sqlite":
        _prepare_sqlite_file(parsed)
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {
            # One connection stays open; the heartbeat thread's (or the study lock's) second
            # one is opened when both are busy and closed after, sparing a full server. A
            # proxy keeps all of its `pool_size` open: it is busy all the time.
            "pool_size": pool_size or 1,
            "max_overflow": max(_pool_size(), pool_size or 0) - (pool_size or 1),
            "connect_args": _postgres_connect_args(parsed),
        }
    delays = backoff_delays(wait_seconds)
    races = waited = 0
    while True:
        try:
            storage = _connect(url, backend, engine_kwargs, heartbeat_interval, grace_period)
            break
        except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
            # Processes starting together on an empty database race to create the
            # tables; the losers see "already exists" / a unique violation, or on SQLite
            # "database is locked" (a schema read upgraded to a write fails at once, busy
            # timeout or not). Try again: by then the tables are there.
            if races + 1 < CREATE_ATTEMPTS and (
                lost_table_creation_race(exc) or (backend == "sqlite" and sqlite_locked(exc))
            ):
                races += 1
                time.sleep(0.2 * races)
                continue
            delay = next(delays, None) if server_busy(exc) else None
            if delay is None:
                gave_up = f" (gave up after {wait_seconds:g} s)" if waited else ""
                raise StorageError(failure_message(url, exc) + gave_up) from None
            log.warning(
                "storage %s cannot take a connection now (%s); retrying in %.1f s",
                mask_url(url),
                scrub(driver_reason(exc), url),
                delay,
            )
            time.sleep(delay)
            waited += 1
    storage.retry_seconds = wait_seconds
    if backend == "sqlite":
        _begin_immediate(storage.engine)
    else:
        _ping_idle_connections(storage.engine)
    return storage


def _ping_idle_connections(engine: sqlalchemy.Engine) -> None:
    """Replace a pooled connection that a database restart broke while it sat idle.

    SQLAlchemy's pool_pre_ping does it with a round trip at every checkout (4-7 per trial,
    a quarter of a storage-bound trial's round trips); this pings only a connection idle
    for PING_IDLE_SECONDS. One broken in the moment since its last use fails its statement
    with a lost connection, which SQLAlchemy turns into a fresh pool and the storage's
    retries into a second try.
    """

    def checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or time.monotonic() - since < PING_IDLE_SECONDS:
            return
        try:
            _ping(dbapi_connection)
        except Exception as exc:  # the pool replaces it (and tries a new one) on this error
            raise sqlalchemy.exc.DisconnectionError(str(exc)) from exc

    sqlalchemy.event.listen(engine, "checkin", checkin)
    sqlalchemy.event.listen(engine, "checkout", checkout)


def _ping(dbapi_connection: Any) -> None:
    """One round trip on a driver connection; raises if the connection is broken."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SELECT 1")
    finally:
        cursor.close()


def _postgres_connect_args(url: URL) -> dict[str, Any]:
    """Driver arguments of every PostgreSQL connection this process opens.

    Each connection is named after its process (`application_name`, shown in
    pg_stat_activity) as `hpo host:pid`, the `worker` attr of the trials it runs, so an
    operator can tell whose connections fill the server. A name in the URL wins.
    """
    args: dict[str, Any] = {"connect_timeout": 10}
    if "application_name" not in url.query:
        # PostgreSQL keeps the first 63 bytes of the name.
        args["application_name"] = f"hpo {platform.node()}:{os.getpid()}"[:63]
    return args


def _connect(
    url: str,
    backend: str,
    engine_kwargs: dict[str, Any],
    heartbeat_interval: int,
    grace_period: int | None,
) -> ResilientRDBStorage:
    with warnings.catch_warnings(), _schema_lock(url, backend):
        # heartbeat and the retry callback are marked experimental; we rely on them.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return ResilientRDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=StaleTrialRetry(max_retry=MAX_RETRY),
        )


@contextlib.contextmanager
def _schema_lock(url: str, backend: str) -> Iterator[None]:
    """PostgreSQL without Optuna's tables yet: hold an advisory lock while they are created.

    Optuna's create_all checks, then creates: two processes starting on an empty database
    at once both try to create the tables, and one fails with "already exists" or a unique
    violation on pg_type. Serialising the first connection of every process avoids that.
    Once the tables exist there is nothing to serialise, and no lock is taken: it would
    be a third connection beside the two that Optuna's start-up holds.
    """
    if backend != "postgresql":
        yield
        return
    engine = sqlalchemy.create_engine(
        url, poolclass=sqlalchemy.pool.NullPool, connect_args=_postgres_connect_args(make_url(url))
    )
    try:
        with engine.connect() as connection:
            # Optuna writes alembic_version last: once it is there, the schema is complete.
            created = sqlalchemy.inspect(connection).has_table("alembic_version")
            if not created:
                connection.execute(
                    sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": SCHEMA_LOCK_KEY}
                )
                connection.commit()
                try:
                    yield
                finally:
                    connection.execute(
                        sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": SCHEMA_LOCK_KEY}
                    )
                    connection.commit()
        if created:
            yield
    finally:
        engine.dispose()


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
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            # WAL lets readers (the dashboard, progress polling) run beside a writer; the
            # setting is stored in the file, so once is enough.
            with contextlib.closing(sqlite3.connect(database, timeout=60)) as connection:
                connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.Error as exc:
            # Switching a new file to WAL is refused at once, busy timeout or not, while
            # another process starting beside this one holds it: try again, as for tables.
            if attempt < CREATE_ATTEMPTS and "locked" in str(exc):
                time.sleep(0.2 * attempt)
                continue
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
