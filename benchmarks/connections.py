"""PostgreSQL connections per worker: 32 `hpo worker` processes on one study.

Measured, not asserted (tests/hpo/storage/test_connections.py asserts the bound with 8). Each
worker is a real `hpo worker` process training a tiny MLP on rings; pg_stat_activity is
sampled every 0.2 s and grouped by application_name, which hpo sets to `hpo host:pid` on
every connection, so each connection is attributed to its worker.

    python3 benchmarks/connections.py --workers 32 --trials 320
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import sqlalchemy
from _machine import PG_ADMIN_URL, ROOT, PgActivitySampler, banner, count, fresh_postgres
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from hpo.config.spec import load_spec
from hpo.storage.open import open_storage
from hpo.study.create import open_study
from hpo.study.records import budget_of

STUDY = """
[study]
name = "connections"
trials = {trials}
[model]
name = "mlp"
[data]
name = "rings"
max_train = 300
[train]
epochs = {epochs}
[sampler]
name = "random"
[pruner]
name = "none"
[space]
depth = {{ low = 1, high = 2 }}
width = {{ low = 8, high = 16 }}
lr = {{ low = 1e-3, high = 1e-1, log = true }}
batch_size = 64
"""


def _start_worker(url: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPO_")}
    env.update(HPO_STORAGE=url, HPO_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "hpo", "worker", "--study", "connections", "--gpus", "none"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _report(
    sampler: PgActivitySampler, workers: list[subprocess.Popen[bytes]]
) -> tuple[int, int, int]:
    """Most connections one worker held, most all workers held at once, workers seen."""
    names = {f"hpo {platform.node()}:{w.pid}"[:63] for w in workers}
    per_worker: Counter[str] = Counter()
    total = 0
    for sample in sampler.samples:
        ours = {name: n for name, n in sample.items() if name in names}
        total = max(total, sum(ours.values()))
        for name, n in ours.items():
            per_worker[name] = max(per_worker[name], n)
    return max(per_worker.values(), default=0), total, len(per_worker)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--trials", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--every", type=float, default=0.2, help="seconds between samples")
    parser.add_argument("--admin-url", default=PG_ADMIN_URL)
    args = parser.parse_args()
    print(banner(f"connections: {args.workers} `hpo worker` processes, {args.trials} trials"))
    with fresh_postgres(args.admin_url) as url:
        if url is None:
            return
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "connections.toml"
            path.write_text(STUDY.format(trials=args.trials, epochs=args.epochs))
            study = open_study(open_storage(url), load_spec(path))
        admin = sqlalchemy.create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
        sampler = PgActivitySampler(admin, make_url(url).database, args.every)
        sampler.start()
        started = time.perf_counter()
        workers = [_start_worker(url) for _ in range(args.workers)]
        stderr = [w.communicate()[1].decode() for w in workers]
        seconds = time.perf_counter() - started
        sampler.done.set()
        sampler.join()
        admin.dispose()
        most, total, seen = _report(sampler, workers)
        budget = budget_of(study)
        codes = Counter(w.returncode for w in workers)
        failed = budget.states[TrialState.FAIL]
        lost = budget.target - budget.finished
        print(f"samples: {len(sampler.samples)} every {args.every} s; workers seen: {seen}")
        print(f"max connections per worker: {most}; max total (all workers at once): {total}")
        print(
            f"trials: {budget.finished}/{budget.target} finished "
            f"({ {s.name: n for s, n in budget.states.items()} }), "
            f"{budget.finished / seconds:.2f} trials/s ({seconds:.1f} s, process start included)"
        )
        print(f"errors: exit codes {dict(codes)}, {failed} failed trials; lost trials: {lost}")
        count("connections: most PostgreSQL connections of one worker", most)
        bad_exits = sum(n for code, n in codes.items() if code != 0)
        count("connections: failed + lost trials + failed worker exits", failed + lost + bad_exits)
        failures = {
            e.strip().splitlines()[-1]
            for w, e in zip(workers, stderr, strict=True)
            if w.returncode and e.strip()
        }
        for line in sorted(failures):
            print(f"  a failed worker's last line: {line}")


if __name__ == "__main__":
    main()
