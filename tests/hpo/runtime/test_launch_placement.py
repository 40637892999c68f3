"""K workers per GPU, each pinned and capped; workers that outlive their launcher stop.

Everything here runs without a GPU: placement and memory caps are checked through the
environment each worker gets and the torch calls it makes (tests/hpo/runtime/test_gpu.py runs
the real thing on CUDA).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo.config.settings import GPU_MEMORY_RESERVE, gpu_memory_fraction
from hpo.runtime.devices import apply_worker_limits
from hpo.runtime.launch import WorkerPlan, plan_workers, worker_env
from tests.helpers import HpoProcesses, alive, children, wait_for


def test_k_workers_per_gpu_are_pinned_with_distinct_indices() -> None:
    plans = plan_workers(1, [0, 3], per_gpu=3, first_index=10)
    assert [(p.index, p.gpu, p.gpu_share) for p in plans] == [
        (10, 0, 3),
        (11, 0, 3),
        (12, 0, 3),
        (13, 3, 3),
        (14, 3, 3),
        (15, 3, 3),
    ]
    assert plan_workers(2, [], per_gpu=4) == [WorkerPlan(0, None), WorkerPlan(1, None)]


@pytest.mark.parametrize("share", [1, 2, 4, 8])
def test_each_worker_on_a_gpu_gets_its_memory_share(share: int) -> None:
    env = worker_env(WorkerPlan(0, 2, share), 0, "sqlite:///x.db")
    assert env["CUDA_VISIBLE_DEVICES"] == "2"
    assert env["HPO_WORKERS_ON_DEVICE"] == str(share)
    fraction = float(env["HPO_GPU_MEMORY_FRACTION"])
    assert fraction == pytest.approx((1 - GPU_MEMORY_RESERVE) / share, abs=1e-4)
    assert fraction * share < 1.0  # the shares and the reserve fit on the GPU together
    assert env["HPO_LAUNCHER_PID"] == str(os.getpid())


def test_cpu_workers_share_the_cores_and_see_no_gpu() -> None:
    env = worker_env(WorkerPlan(1, None), 2, "sqlite:///x.db")
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert env["HPO_WORKERS_ON_DEVICE"] == "2"
    assert "HPO_GPU_MEMORY_FRACTION" not in env


def test_worker_applies_its_memory_cap_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    calls: list[tuple[float, torch.device]] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(
        torch.cuda,
        "set_per_process_memory_fraction",
        lambda fraction, device: calls.append((fraction, device)),
    )
    monkeypatch.setenv("HPO_GPU_MEMORY_FRACTION", f"{gpu_memory_fraction(4):.4f}")
    monkeypatch.delenv("HPO_THREADS", raising=False)
    apply_worker_limits("cuda:0")
    assert calls == [(pytest.approx(0.2375), torch.device("cuda:0"))]
    calls.clear()
    apply_worker_limits("cpu")  # the cap is a GPU setting: nothing to do on the CPU
    assert calls == []


def test_cpu_worker_takes_its_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("HPO_THREADS", "1")
    monkeypatch.delenv("HPO_GPU_MEMORY_FRACTION", raising=False)
    try:
        apply_worker_limits("cpu")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_worker_without_a_thread_count_uses_the_cpus_it_may_run_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`hpo worker` in a Slurm task or a cpuset: one torch thread per CPU of its allocation."""
    import torch

    before = torch.get_num_threads()
    monkeypatch.delenv("HPO_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {3})
    try:
        torch.set_num_threads(2)
        apply_worker_limits("cpu")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_memory_fraction_shrinks_with_the_share() -> None:
    fractions = [gpu_memory_fraction(k) for k in (1, 2, 4, 8)]
    assert fractions == sorted(fractions, reverse=True)
    assert fractions[0] == 1 - GPU_MEMORY_RESERVE


def test_workers_stop_and_requeue_when_their_launcher_is_killed(
    tmp_path: Path, write_study, sqlite_url: str
) -> None:
    path = write_study("orphans", trials=4, epochs=400)
    with HpoProcesses() as processes:
        launch = processes.start(
            "launch", "study", str(path), "--workers", "2", env={"HPO_STORAGE": sqlite_url}
        )

        def two_running() -> list[int] | None:
            if not optuna.get_all_study_summaries(sqlite_url):
                return None
            study = optuna.load_study(study_name="orphans", storage=sqlite_url)
            workers = children(launch.pid)
            running = study.get_trials(states=(TrialState.RUNNING,))
            return workers if len(running) == 2 and len(workers) == 2 else None

        workers = wait_for(two_running, "both workers to run a trial")
        launch.send_signal(signal.SIGKILL)  # no chance to stop its workers itself
        launch.wait()
        wait_for(
            lambda: not [pid for pid in workers if alive(pid)],
            "the workers of the killed launcher to stop",
        )
    trials = optuna.load_study(study_name="orphans", storage=sqlite_url).get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert len(interrupted) == 2
    assert all(t.user_attrs["fail_reason"].startswith("interrupted") for t in interrupted)
    assert len([t for t in trials if t.state == TrialState.WAITING]) == 4  # all re-queued
