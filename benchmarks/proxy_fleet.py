"""A fleet of cheap workers through one storage proxy (`hpo proxy`) vs straight to PostgreSQL.

Measured, not asserted (tests/hpo/storage/test_proxy.py asserts the behaviour). Each arm runs one
study of zero-cost trials (the objective only suggests `x`, as in benchmarks/load_postgres.py)
on a fresh PostgreSQL database, with N forked worker processes each running hpo's worker
loop (claim, heartbeat, tell, top up the queue):

- proxy:  one `hpo proxy` process in front of the database; workers use grpc://;
- direct: workers connect to PostgreSQL themselves (at most 2 connections each).

pg_stat_activity of the arm's database is sampled every 0.1 s and grouped by
application_name (hpo names each connection `hpo host:pid`), so the proxy's connections
and the workers' are told apart. Lost trials: budget minus trials completed; extra: trials
counted beyond the budget.

    python3 benchmarks/proxy_fleet.py --workers 64 --trials 1000 --baseline-workers 32

The direct arm runs fewer workers by default: 64 workers straight to a server with the
default max_connections = 100 could need 128 connections and starve everything else on it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy
from _machine import (
    PG_ADMIN_URL,
    ROOT,
    ZERO_COST_STUDY,
    PgActivitySampler,
    banner,
    count,
    fresh_postgres,
)
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from hpo.config.spec import load_spec
from hpo.storage.open import open_storage
from hpo.study.create import open_study
from hpo.study.records import budget_of
from tests.helpers import zero_cost

HEARTBEAT = 5  # seconds: zero-cost trials end before their first beat, as in load_postgres


def _worker(url: str, index: int, errors: multiprocessing.Queue) -> None:
    from hpo.runtime.worker import run_worker

    try:
        storage = open_storage(url, heartbeat_interval=HEARTBEAT)
        run_worker(storage, "fleet", worker_index=index, objective_factory=zero_cost())
    except BaseException as exc:
        errors.put(f"worker {index}: {type(exc).__name__}: {exc}".splitlines()[0])
        traceback.print_exc()
        sys.exit(1)


@dataclass
class Outcome:
    """One arm's figures."""

    arm: str
    workers: int
    seconds: float
    peak_total: int  # most connections to the database at once, whoever held them
    peak_proxy: int  # most held by the proxy process
    peak_workers: int  # most held by all workers together
    finished: int
    complete: int
    failed: int
    target: int
    exit_codes: Counter[int]
    errors: list[str]

    def lines(self) -> list[str]:
        lost = max(0, self.target - self.complete)
        extra = max(0, self.finished - self.target)
        return [
            f"[{self.arm}] {self.workers} workers: {self.finished}/{self.target} finished "
            f"({self.complete} complete, {self.failed} failed) in {self.seconds:.1f} s: "
            f"{self.finished / self.seconds:.1f} trials/s (process start included)",
            f"[{self.arm}] peak PostgreSQL connections: {self.peak_total} in all "
            f"(proxy {self.peak_proxy}, workers {self.peak_workers})",
            f"[{self.arm}] errors: exit codes {dict(self.exit_codes)}, {self.failed} failed "
            f"trials; lost trials: {lost}; extra trials: {extra}",
            *(f"[{self.arm}]   {line}" for line in sorted(set(self.errors))[:5]),
        ]


def _name(pid: int) -> str:
    return f"hpo {platform.node()}:{pid}"[:63]


def _start_proxy(url: str) -> tuple[subprocess.Popen[str], str]:
    """`hpo proxy` in front of `url` on a free loopback port; the process and its URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPO_")}
    env.update(HPO_STORAGE=url, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [sys.executable, "-m", "hpo", "proxy", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    proxy_url = next((w.rstrip(";") for w in line.split() if w.startswith("grpc://")), None)
    if proxy_url is None:
        process.kill()
        raise SystemExit(f"the proxy did not start: {line!r} {process.communicate()[1][-2000:]}")
    return process, proxy_url


def run_arm(arm: str, workers: int, trials: int, admin_url: str, every: float) -> Outcome:
    with fresh_postgres(admin_url) as url:
        if url is None:
            raise SystemExit("PostgreSQL is needed")
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "fleet.toml"
            path.write_text(ZERO_COST_STUDY.format(name="fleet", trials=trials))
            setup = open_storage(url)
            study = open_study(setup, load_spec(path))
            setup.engine.dispose()  # the parent holds no connection while the fleet runs
        proxy, worker_url = _start_proxy(url) if arm == "proxy" else (None, url)
        admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        context = multiprocessing.get_context("fork")  # torch imported once, not per worker
        errors = context.Queue()
        processes = [
            context.Process(target=_worker, args=(worker_url, i, errors)) for i in range(workers)
        ]
        started = time.perf_counter()
        for process in processes:
            process.start()
        sampler = PgActivitySampler(admin, make_url(url).database, every)
        sampler.start()
        for process in processes:
            process.join()
        seconds = time.perf_counter() - started
        sampler.done.set()
        sampler.join()
        if proxy is not None:
            proxy.send_signal(signal.SIGTERM)
            proxy.communicate(timeout=60)
        admin.dispose()
        messages = []
        while not errors.empty():
            messages.append(errors.get())
        budget = budget_of(study)
        names = {_name(p.pid) for p in processes if p.pid is not None}
        proxy_name = _name(proxy.pid) if proxy is not None else None
        outcome = Outcome(
            arm=arm,
            workers=workers,
            seconds=seconds,
            peak_total=max((sum(s.values()) for s in sampler.samples), default=0),
            peak_proxy=max((s[proxy_name] for s in sampler.samples), default=0)
            if proxy_name
            else 0,
            peak_workers=max(
                (sum(n for k, n in s.items() if k in names) for s in sampler.samples), default=0
            ),
            finished=budget.finished,
            complete=budget.states[TrialState.COMPLETE],
            failed=budget.states[TrialState.FAIL],
            target=budget.target,
            exit_codes=Counter(p.exitcode for p in processes),
            errors=messages,
        )
        return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=64, help="workers behind the proxy")
    parser.add_argument("--trials", type=int, default=1000, help="budget of each arm's study")
    parser.add_argument(
        "--baseline-workers",
        type=int,
        default=32,
        help="workers straight to PostgreSQL (0: no baseline)",
    )
    parser.add_argument("--every", type=float, default=0.1, help="seconds between samples")
    parser.add_argument("--admin-url", default=PG_ADMIN_URL)
    args = parser.parse_args()
    print(
        banner(
            f"proxy fleet: {args.workers} workers through one `hpo proxy`, "
            f"{args.baseline_workers} straight to PostgreSQL; {args.trials} zero-cost trials each"
        )
    )
    arms = [("proxy", args.workers)]
    if args.baseline_workers:
        arms.append(("direct", args.baseline_workers))
    for arm, workers in arms:
        outcome = run_arm(arm, workers, args.trials, args.admin_url, args.every)
        for line in outcome.lines():
            print(line, flush=True)
        lost = max(0, outcome.target - outcome.complete)
        count(f"proxy fleet: {arm}, failed + lost trials", outcome.failed + lost)
        if arm == "proxy":  # the claim: workers behind the proxy never open a connection
            count("proxy fleet: proxy, peak PostgreSQL connections of the workers",
                  outcome.peak_workers)  # fmt: skip


if __name__ == "__main__":
    main()
