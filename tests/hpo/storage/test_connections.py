"""Each worker process holds at most two PostgreSQL connections, whatever it is doing."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable

import pytest
import sqlalchemy
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from hpo.storage.open import open_storage
from hpo.study.records import budget_of
from tests.helpers import (
    WAIT_SECONDS,
    HpoProcesses,
    connection_name,
    connections_by_application,
    worker_settings,
)

pytestmark = pytest.mark.postgres

WORKERS = 8
SAMPLE_SECONDS = 0.2
MAX_CONNECTIONS = 2  # per process: hpo.storage.rdb's default HPO_DB_POOL_SIZE


def test_each_worker_holds_at_most_two_connections(
    postgres_url: str, pg_admin: sqlalchemy.Engine, create_study: Callable[..., object]
) -> None:
    # Trials of many epochs, so that claims, heartbeats, reports and top-ups all overlap.
    study = create_study(postgres_url, "connections", trials=3 * WORKERS, epochs=60)
    database = make_url(postgres_url).database
    with HpoProcesses() as processes:
        workers = [
            processes.start(
                "worker",
                "--study",
                "connections",
                "--gpus",
                "none",
                env=worker_settings(postgres_url),
            )
            for _ in range(WORKERS)
        ]
        # hpo names each connection after its process (application_name "hpo host:pid").
        names = {connection_name(worker.pid) for worker in workers}
        most: Counter[str] = Counter()
        deadline = time.monotonic() + WAIT_SECONDS
        while any(w.poll() is None for w in workers) and time.monotonic() < deadline:
            for name, count in connections_by_application(pg_admin, database).items():
                if name in names:
                    most[name] = max(most[name], count)
            time.sleep(SAMPLE_SECONDS)
        results = processes.finish()

    assert [r.returncode for r in results] == [0] * WORKERS, [r.stderr[-2000:] for r in results]
    assert set(most) == names  # every worker was seen connected, under its own name
    assert max(most.values()) <= MAX_CONNECTIONS, most
    budget = budget_of(study)
    assert budget.done and budget.states[TrialState.COMPLETE] == 3 * WORKERS


def test_connections_carry_the_process_name(postgres_url: str) -> None:
    storage = open_storage(postgres_url)
    with storage.engine.connect() as connection:
        name = connection.execute(sqlalchemy.text("SHOW application_name")).scalar_one()
    assert name.startswith("hpo ") and name.endswith(f":{os.getpid()}")
