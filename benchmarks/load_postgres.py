"""Throughput of the distributed worker loop on PostgreSQL: zero-cost trials per second.

Measured, not asserted. N worker processes (forked, each with its own storage) run a
study whose objective does no work, so the figure is the cost of claiming, heartbeating,
suggesting and telling trials through the database.

    python benchmarks/load_postgres.py --workers 8 --trials 500 \
        --admin-url postgresql://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy
from _machine import ZERO_COST_STUDY, banner, count

from hpo.config.spec import load_spec
from hpo.storage.open import open_storage
from hpo.study.create import open_study
from hpo.study.records import budget_of
from tests.helpers import zero_cost


def _worker(url: str, index: int) -> None:
    from hpo.runtime.worker import run_worker

    run_worker(
        open_storage(url, heartbeat_interval=5),
        "load",
        worker_index=index,
        objective_factory=zero_cost(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument(
        "--admin-url",
        default="postgresql+psycopg://postgres@127.0.0.1/test",
        help="a database where a scratch database may be created and dropped",
    )
    args = parser.parse_args()
    print(banner(f"PostgreSQL load: {args.workers} workers, {args.trials} zero-cost trials"))
    admin = sqlalchemy.create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
    name = f"hpo_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "load.toml"
            path.write_text(ZERO_COST_STUDY.format(name="load", trials=args.trials))
            study = open_study(open_storage(url), load_spec(path))
        context = multiprocessing.get_context("fork")
        processes = [context.Process(target=_worker, args=(url, i)) for i in range(args.workers)]
        started = time.perf_counter()
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        seconds = time.perf_counter() - started
        budget = budget_of(study)
        print(
            f"{args.workers} workers, {budget.finished}/{args.trials} trials finished "
            f"({dict((s.name, n) for s, n in budget.states.items())}), exit codes "
            f"{[p.exitcode for p in processes]}: {budget.finished / seconds:.1f} trials/s "
            f"({seconds:.1f} s, process start included)"
        )
        lost = args.trials - budget.finished
        count("postgres load: lost trials + failed worker exits",
              lost + sum(p.exitcode != 0 for p in processes))  # fmt: skip
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
