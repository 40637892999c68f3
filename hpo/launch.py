"""Spawn local worker processes for a study, watch the budget, stop them all on Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import optuna

from hpo.devices import threads_per_worker
from hpo.study import Budget, budget_of
from hpo.summary import best_trial

STOP_GRACE_SECONDS = 60  # after Ctrl-C, how long workers get to finish their epoch


@dataclass(frozen=True)
class WorkerPlan:
    """One local worker: its index (seed offset) and the GPU it may see (None: CPU)."""

    index: int
    gpu: int | None


def plan_workers(workers: int, gpus: list[int]) -> list[WorkerPlan]:
    """One worker per selected GPU; `workers` CPU workers when no GPU is selected."""
    if gpus:
        return [WorkerPlan(i, gpu) for i, gpu in enumerate(gpus)]
    return [WorkerPlan(i, None) for i in range(workers)]


def worker_env(
    plan: WorkerPlan, n_workers: int, storage_url: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment of a worker process: storage passed here, never on the command line
    (a password there would show in `ps` and in the process title)."""
    env = dict(os.environ, **(extra or {}), HPO_STORAGE=storage_url, PYTHONUNBUFFERED="1")
    if plan.gpu is None:
        env["CUDA_VISIBLE_DEVICES"] = ""
        env["HPO_THREADS"] = str(threads_per_worker(n_workers))
    else:
        env["CUDA_VISIBLE_DEVICES"] = str(plan.gpu)
    return env


def run_local_workers(
    study: optuna.Study,
    storage_url: str,
    plans: list[WorkerPlan],
    *,
    data_dir: str | None = None,
    on_progress: Callable[[Budget, float | None], None] | None = None,
    poll_seconds: float = 1.0,
    extra_env: Mapping[str, str] | None = None,
) -> list[int]:
    """Run the workers to completion; returns their exit codes.

    Workers run in their own sessions so the terminal's Ctrl-C reaches only this process,
    which then asks each worker to stop (SIGTERM: finish the epoch, re-queue the trial)
    and, on a second Ctrl-C or after a grace period, kills them. None is left behind.
    SIGTERM (`docker stop`, a batch scheduler) is treated like Ctrl-C. `extra_env` goes to
    every worker (heartbeat interval, artifact folder).
    """
    processes: list[subprocess.Popen[bytes]] = []
    with _sigterm_as_interrupt():
        try:
            for plan in plans:
                processes.append(
                    _spawn(plan, len(plans), storage_url, study.study_name, data_dir, extra_env)
                )
            while any(p.poll() is None for p in processes):
                if on_progress is not None:
                    on_progress(budget_of(study), _best_value(study))
                _wait_any(processes, poll_seconds)
        finally:
            _stop(processes)
    if on_progress is not None:
        on_progress(budget_of(study), _best_value(study))
    return [p.returncode for p in processes]


def _wait_any(processes: list[subprocess.Popen[bytes]], seconds: float) -> None:
    """Sleep up to `seconds`, but return as soon as the last running worker exits."""
    running = [p for p in processes if p.poll() is None]
    if len(running) == 1:
        with contextlib.suppress(subprocess.TimeoutExpired):
            running[0].wait(timeout=seconds)
    else:
        time.sleep(seconds)


def run_worker_here(
    study: optuna.Study,
    storage: optuna.storages.RDBStorage,
    *,
    data_dir: str | None = None,
    artifacts: str | None = None,
    checkpoint_every: float | None = None,
    on_progress: Callable[[Budget, float | None], None] | None = None,
) -> None:
    """Run the one local CPU worker in this process: no second interpreter to start.

    Progress is reported after each trial, not polled: a polling thread would compete with
    training for the interpreter and the cores.

    The first Ctrl-C / SIGTERM stops it at the next epoch boundary with the trial
    re-queued, as a worker process would, then raises KeyboardInterrupt; a second one
    raises at once (the trial is then failed and retried after the heartbeat grace period).
    """
    import threading

    from hpo.checkpoint import CHECKPOINT_EVERY
    from hpo.worker import run_worker

    stop = threading.Event()

    def request_stop(_signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    def progress() -> None:
        if on_progress is not None:
            on_progress(budget_of(study), _best_value(study))

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    progress()
    try:
        run_worker(
            storage,
            study.study_name,
            data_dir=data_dir,
            stop=stop,
            artifacts=artifacts,
            checkpoint_every=CHECKPOINT_EVERY if checkpoint_every is None else checkpoint_every,
            on_trial_end=progress,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stop.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt (main thread only)."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _spawn(
    plan: WorkerPlan,
    n_workers: int,
    storage_url: str,
    study_name: str,
    data_dir: str | None,
    extra_env: Mapping[str, str] | None,
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "hpo",
        "worker",
        "--study",
        study_name,
        "--worker-index",
        str(plan.index),
        "--gpus",
        "none" if plan.gpu is None else "0",
        "--quiet",
    ]
    if data_dir:
        command += ["--data-dir", data_dir]
    env = worker_env(plan, n_workers, storage_url, extra_env)
    return subprocess.Popen(command, env=env, start_new_session=True)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    running = [p for p in processes if p.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    try:
        for process in running:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        pass
    for process in running:
        if process.poll() is None:
            process.kill()
            process.wait()


def _best_value(study: optuna.Study) -> float | None:
    best = best_trial(study)
    return best.value if best is not None else None
