"""Local workers for a study: plan them, run one in this process or spawn several, stop all.

`hpo launch study` and `hpo worker` both come here. A lone CPU worker runs in the calling
process (no second interpreter to start); otherwise each worker is a process of its own,
pinned to its GPU (K of them per GPU, each with a capped memory share) or to a share of
the CPU cores. Ctrl-C / SIGTERM stops every worker at its next epoch boundary with its
trial re-queued; a second one kills them. A worker whose launcher dies stops the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hpo.config.settings import WORKERS_ON_DEVICE_ENV, gpu_memory_fraction
from hpo.errors import HpoError
from hpo.runtime.devices import (
    GPU_MEMORY_FRACTION_ENV,
    LAUNCHER_PID_ENV,
    THREADS_ENV,
    threads_per_worker,
)
from hpo.study.progress import StudyProgress, progress_of

if TYPE_CHECKING:
    import optuna

    from hpo.config.settings import Settings
    from hpo.runtime.worker import WorkerReport

STOP_GRACE_SECONDS = 60  # after Ctrl-C, how long workers get to finish their epoch
POLL_STEP_SECONDS = 0.1  # how soon the launcher notices a stop request or a last exit
PARENT_POLL_SECONDS = 1.0  # how often a spawned worker checks that its launcher lives

log = logging.getLogger("hpo.runtime.launch")
ProgressCallback = Callable[[StudyProgress], None]


@dataclass(frozen=True)
class WorkerPlan:
    """One local worker: its index (seed offset) and the GPU it may see (None: CPU)."""

    index: int  # seed offset of its sampler; distinct per worker of a study
    gpu: int | None  # the GPU it is pinned to; None: CPU
    gpu_share: int = 1  # workers on that GPU: each may use 1/gpu_share of its memory


def plan_workers(
    workers: int, gpus: list[int], *, per_gpu: int = 1, first_index: int = 0
) -> list[WorkerPlan]:
    """`per_gpu` workers on each selected GPU; `workers` CPU workers when none is selected.

    Indices count up from `first_index`, so each worker of a study samples its own stream.
    """
    if gpus:
        slots = [gpu for gpu in gpus for _ in range(per_gpu)]
        return [WorkerPlan(first_index + i, gpu, per_gpu) for i, gpu in enumerate(slots)]
    return [WorkerPlan(first_index + i, None) for i in range(workers)]


def default_worker_index() -> int:
    """A seed offset for a worker started by hand: distinct across hosts and processes."""
    return 1 + zlib.crc32(f"{platform.node()}:{os.getpid()}".encode()) % 100_000


def worker_env(
    plan: WorkerPlan, n_workers: int, storage_url: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment of a worker process: storage passed here, never on the command line
    (a password there would show in `ps` and in the process title)."""
    env = dict(os.environ, **(extra or {}), HPO_STORAGE=storage_url, PYTHONUNBUFFERED="1")
    env[LAUNCHER_PID_ENV] = str(os.getpid())
    if plan.gpu is None:
        env["CUDA_VISIBLE_DEVICES"] = ""
        env[THREADS_ENV] = str(threads_per_worker(n_workers))
        env[WORKERS_ON_DEVICE_ENV] = str(n_workers)
    else:
        env["CUDA_VISIBLE_DEVICES"] = str(plan.gpu)
        env[GPU_MEMORY_FRACTION_ENV] = f"{gpu_memory_fraction(plan.gpu_share):.4f}"
        env[WORKERS_ON_DEVICE_ENV] = str(plan.gpu_share)
    return env


def run_workers(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    settings: Settings,
    plans: list[WorkerPlan],
    *,
    data_dir: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> list[int]:
    """Run the planned workers until the study's budget is done; returns their exit codes.

    Raises KeyboardInterrupt after a Ctrl-C / SIGTERM, once every worker has stopped.
    """
    if plans == [WorkerPlan(0, None)]:
        show = (lambda: on_progress(progress_of(study))) if on_progress else None
        if show is not None:
            show()  # where the study stands before the first trial
        report = run_in_process(
            storage, study.study_name, settings, data_dir=data_dir, on_trial_end=show
        )
        if report.stopped:
            raise KeyboardInterrupt
        return [0]
    return run_local_workers(
        study,
        settings.storage_url,
        plans,
        data_dir=data_dir,
        on_progress=on_progress,
        extra_env=settings.worker_env(),
    )


def run_in_process(
    storage: optuna.storages.BaseStorage,
    study_name: str,
    settings: Settings,
    *,
    device: str = "cpu",
    worker_index: int = 0,
    data_dir: str | None = None,
    on_trial_end: Callable[[], None] | None = None,
) -> WorkerReport:
    """Run one worker in this process until nothing is left or it is asked to stop.

    Progress is reported after each trial, not polled: a polling thread would compete with
    training for the interpreter and the cores. The first Ctrl-C / SIGTERM (or the death of
    the launcher that spawned this process) stops it at the next epoch boundary with the
    trial re-queued; a second signal raises KeyboardInterrupt at once.
    """
    from hpo.runtime.devices import apply_worker_limits
    from hpo.runtime.worker import run_worker

    apply_worker_limits(device)
    stop = threading.Event()
    with stop_on_signals(stop), stop_when_launcher_dies(stop):
        return run_worker(
            storage,
            study_name,
            worker_index=worker_index,
            device=device,
            data_dir=data_dir,
            stop=stop,
            artifacts=settings.artifacts,
            checkpoint_every=settings.checkpoint_every,
            on_trial_end=on_trial_end,
        )


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Within the block, the first SIGINT / SIGTERM sets `stop`; a second raises
    KeyboardInterrupt. Outside the main thread signals are left alone."""

    def request_stop(signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.warning("%s received: stopping at the next epoch boundary", signal.Signals(signum).name)
        stop.set()

    with _signal_handlers(request_stop):
        yield


@contextlib.contextmanager
def stop_when_launcher_dies(stop: threading.Event) -> Iterator[None]:
    """A spawned worker stops (at its next epoch boundary) when its launcher is gone.

    Workers run in sessions of their own so that the terminal's Ctrl-C reaches only the
    launcher; without this, killing the launcher would leave them running as orphans.
    """
    launcher = os.environ.get(LAUNCHER_PID_ENV)
    if not launcher or not launcher.isdigit():
        yield
        return
    done = threading.Event()

    def watch() -> None:
        while not done.wait(PARENT_POLL_SECONDS):
            if os.getppid() != int(launcher):
                log.warning("launcher %s is gone: stopping at the next epoch boundary", launcher)
                stop.set()
                return

    thread = threading.Thread(target=watch, name="launcher-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()


def run_local_workers(
    study: optuna.Study,
    storage_url: str,
    plans: list[WorkerPlan],
    *,
    data_dir: str | None = None,
    on_progress: ProgressCallback | None = None,
    poll_seconds: float = 1.0,
    extra_env: Mapping[str, str] | None = None,
) -> list[int]:
    """Run worker processes to completion; returns their exit codes.

    Workers run in their own sessions so the terminal's Ctrl-C reaches only this process,
    which then asks each worker to stop (SIGTERM: finish the epoch, re-queue the trial)
    and, on a second Ctrl-C or after a grace period, kills them. None is left behind.
    SIGTERM (`docker stop`, a batch scheduler) is treated like Ctrl-C. `extra_env` goes to
    every worker (heartbeat interval, artifact folder).
    """
    processes: list[subprocess.Popen[bytes]] = []
    cpu_workers = sum(1 for plan in plans if plan.gpu is None)
    # The first Ctrl-C / SIGTERM only sets `stop`, checked between polls: raised inside a
    # database call (the progress poll), a KeyboardInterrupt can leave the driver waiting
    # forever on a query it cancelled. A second signal raises at once.
    stop = threading.Event()
    with stop_on_signals(stop):
        try:
            for plan in plans:
                env = worker_env(plan, cpu_workers, storage_url, extra_env)
                processes.append(_spawn(plan, study.study_name, data_dir, env))
            while any(p.poll() is None for p in processes):
                if stop.is_set():
                    raise KeyboardInterrupt
                if on_progress is not None:
                    on_progress(progress_of(study))
                _wait_any(processes, poll_seconds, stop)
            if stop.is_set():
                raise KeyboardInterrupt
        finally:
            _stop(processes)
    if on_progress is not None:
        on_progress(progress_of(study))
    return [p.returncode for p in processes]


def check_exit_codes(codes: Sequence[int]) -> None:
    """One line naming the failed workers' exit codes, if any worker failed."""
    failed = [code for code in codes if code]
    if failed:
        raise HpoError(f"{len(failed)} worker(s) exited with errors: {list(codes)}")


@contextlib.contextmanager
def _signal_handlers(
    handler: Callable[[int, object], None],
    signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
) -> Iterator[None]:
    """Install `handler` for `signals` within the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _wait_any(
    processes: list[subprocess.Popen[bytes]], seconds: float, stop: threading.Event
) -> None:
    """Wait up to `seconds`; return early when a stop is requested or the last running
    worker exits."""
    running = [p for p in processes if p.poll() is None]
    deadline = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < deadline:
        if len(running) == 1 and running[0].poll() is not None:
            return
        stop.wait(min(POLL_STEP_SECONDS, max(0.0, deadline - time.monotonic())))


def _spawn(
    plan: WorkerPlan, study_name: str, data_dir: str | None, env: Mapping[str, str]
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
        "none" if plan.gpu is None else "0",  # CUDA_VISIBLE_DEVICES leaves it one GPU
        "--quiet",
    ]
    if data_dir:
        command += ["--data-dir", data_dir]
    return subprocess.Popen(command, env=dict(env), start_new_session=True)


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
