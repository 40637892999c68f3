"""The study lock, and the study operations that run under it next to the database.

Creating a study and topping up its budget's queue must not interleave between processes
or hosts. A process on a database takes the lock itself; a process behind a storage proxy
has no SQL session, so the proxy runs the same operation on its side, under the same lock.
`LockedCall` is that operation, defined once by the study layer and run by either storage
(`storage.run_locked(call, request)`): the study layer never asks which kind it has.
"""

from __future__ import annotations

import contextlib
import fcntl
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from sqlalchemy.engine import make_url

Request = dict[str, Any]  # JSON-able both ways: it may cross the wire to the proxy


@dataclass(frozen=True)
class LockedCall:
    """A study operation run under the lock of `request["study"]`, next to the database."""

    name: str  # its method name on the proxy's wire
    run: Callable[[optuna.storages.RDBStorage, Request], Request]  # (database, request) -> answer


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
