"""Worker scaling: trials/s for 1..16 workers on SQLite and PostgreSQL, storage-bound.

Each worker is a separate process running hpo.runtime.worker.run_worker (claim a queued
trial, heartbeat,
suggest the digits-cnn search space, tell) with an `objective_factory` whose objective costs
nothing ("zero": measures the storage path) or sleeps 0.2 s ("sleep": trials that leave the
storage mostly idle). The sampler is random (so sampler cost does not grow with the study and
hide the storage), the pruner none. Every configuration gets a fresh SQLite file or a fresh
PostgreSQL database. The worker processes are started once and reused, so interpreter and
torch start-up are not counted; trials/s is measured from the first trial's start to the last
trial's end (storage timestamps). Errors (worker exceptions, failed trials) and lost trials
(budget minus finished trials) are counted.

    python3 benchmarks/scaling.py                       # ~4 min on 2 cores
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import tempfile
import threading
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import _machine
import optuna
from _machine import banner, count, figure, fresh_postgres, load, median

SLEEP_SECONDS = 0.2


def make_objective(kind: str) -> Any:
    def factory(spec: Any, stop: threading.Event) -> Any:
        from hpo.study.space import suggest_params

        def objective(trial: optuna.Trial) -> float:
            suggest_params(trial, spec.space)
            if kind == "sleep":
                time.sleep(SLEEP_SECONDS)
            return float(trial.number % 7)

        return objective

    return factory


def serve(jobs: Any, results: Any) -> None:
    """A pooled worker process: run one run_worker per job until told to quit (None)."""
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from hpo.runtime.worker import run_worker
    from hpo.storage.open import open_storage

    results.put(("ready", None))
    while (job := jobs.get()) is not None:
        url, study_name, kind, index = job
        try:
            storage = open_storage(url)
            report = run_worker(
                storage, study_name, worker_index=index, objective_factory=make_objective(kind)
            )
            storage.engine.dispose()
            results.put(("ok", dict(report.states)))
        except Exception:
            results.put(("error", traceback.format_exc(limit=3)))


@dataclasses.dataclass
class Row:
    backend: str
    kind: str
    workers: int
    budget: int
    seconds: float
    finished: int
    states: dict[str, int]
    errors: int
    lost: int

    @property
    def per_s(self) -> float:
        return self.finished / self.seconds if self.seconds > 0 else 0.0


def run_config(
    url: str, backend: str, kind: str, workers: int, budget: int, pool: list[Any], results: Any
) -> Row:
    from optuna.trial import TrialState

    from hpo.config.spec import load_spec
    from hpo.storage.open import open_storage
    from hpo.study.create import open_study
    from hpo.study.records import counted_trials

    spec = load_spec(_machine.ROOT / "studies" / "digits-cnn.toml")
    spec = dataclasses.replace(
        spec,
        name=f"scaling-{kind}-{workers}",
        sampler=dataclasses.replace(spec.sampler, name="random", options={}),
        pruner=dataclasses.replace(spec.pruner, name="none", options={}),
    )
    storage = open_storage(url)
    study = open_study(storage, spec, trials=budget)
    for index in range(workers):
        pool[index].put((url, spec.name, kind, index))
    errors = 0
    for _ in range(workers):
        status, detail = results.get()
        if status == "error":
            errors += 1
            print(f"    worker error: {detail.strip().splitlines()[-1]}")
    trials = counted_trials(study.get_trials(deepcopy=False))
    done = [t for t in trials if t.datetime_complete is not None and t.datetime_start is not None]
    seconds = (
        (
            max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)
        ).total_seconds()
        if done
        else 0.0
    )
    states = Counter(t.state.name.lower() for t in trials)
    finished = sum(1 for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED))
    errors += states.get("fail", 0)
    storage.engine.dispose()
    return Row(
        backend, kind, workers, budget, seconds, finished, dict(states), errors, budget - finished
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4,8,16", help="comma list of worker counts")
    parser.add_argument("--zero-trials", type=int, default=200, help="budget, zero-cost objective")
    parser.add_argument(
        "--sleep-trials-per-worker", type=int, default=8, help="budget per worker, 0.2 s objective"
    )
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--kinds", default="zero,sleep")
    parser.add_argument(
        "--rounds", type=int, default=1, help="sweeps, the worker counts reversed every other one"
    )
    args = parser.parse_args()
    counts = [int(c) for c in args.workers.split(",")]
    print(banner("worker scaling: trials/s by workers and storage"))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    context = mp.get_context("spawn")
    results = context.Queue()
    pool = [context.Queue() for _ in range(max(counts))]
    processes = [context.Process(target=serve, args=(q, results), daemon=True) for q in pool]
    for process in processes:
        process.start()
    for _ in processes:
        results.get()  # all imported and ready
    print(f"{len(processes)} pooled worker processes ready; load {load()}")
    rows: list[Row] = []
    try:
        with tempfile.TemporaryDirectory(prefix="hpo-scaling-") as tmp:
            for sweep in range(args.rounds):
                order = counts if sweep % 2 == 0 else counts[::-1]
                for backend in args.backends.split(","):
                    for kind in args.kinds.split(","):
                        for workers in order:
                            row = run_one(tmp, sweep, backend, kind, workers, args, pool, results)
                            if row is not None:
                                rows.append(row)
    finally:
        for queue in pool:
            queue.put(None)
        for process in processes:
            process.join(timeout=30)
    print_table(rows)


def run_one(
    tmp: str,
    sweep: int,
    backend: str,
    kind: str,
    workers: int,
    args: Any,
    pool: list[Any],
    results: Any,
) -> Row | None:
    """One configuration on a fresh SQLite file or PostgreSQL database (None: no server)."""
    budget = args.zero_trials if kind == "zero" else args.sleep_trials_per_worker * workers
    if backend == "sqlite":
        url = f"sqlite:///{Path(tmp) / f'{kind}-{workers}-{sweep}.db'}"
        row = run_config(url, backend, kind, workers, budget, pool, results)
    else:
        with fresh_postgres() as pg_url:
            if pg_url is None:
                return None
            row = run_config(pg_url, backend, kind, workers, budget, pool, results)
    print(
        f"  {backend:<10} {kind:<5} {workers:>2} workers: {row.per_s:7.1f} "
        f"trials/s ({row.finished}/{budget} in {row.seconds:.1f} s), "
        f"errors {row.errors}, lost {row.lost}, load {load()}",
        flush=True,
    )
    return row


def print_table(rows: list[Row]) -> None:
    """Medians over sweeps; the speed-up of each sweep is against that sweep's 1 worker."""
    print(
        f"\n{'storage':<11}{'objective':<10}{'workers':>8}{'trials/s':>10}{'speedup':>9}"
        f"{'ideal':>8}{'errors':>8}{'lost':>6}"
    )
    keys = list(dict.fromkeys((r.backend, r.kind, r.workers) for r in rows))
    for backend, kind, workers in keys:
        same = [r for r in rows if (r.backend, r.kind, r.workers) == (backend, kind, workers)]
        ones = [r for r in rows if (r.backend, r.kind, r.workers) == (backend, kind, 1)]
        speedups = [
            r.per_s / one.per_s for r, one in zip(same, ones, strict=False) if one.per_s > 0
        ]
        ideal = f"{workers / SLEEP_SECONDS:>8.1f}" if kind == "sleep" else f"{'':>8}"
        errors, lost = sum(r.errors for r in same), sum(r.lost for r in same)
        print(
            f"{backend:<11}{kind:<10}{workers:>8}{median([r.per_s for r in same]):>10.1f}"
            f"{median(speedups):>9.2f}{ideal}{errors:>8}{lost:>6}"
        )
        if workers > 1:
            figure(f"scaling: {backend} {kind}, {workers} workers / 1", speedups, "x")
    count("scaling: errors + lost trials, all configurations", sum(r.errors + r.lost for r in rows))
    print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
