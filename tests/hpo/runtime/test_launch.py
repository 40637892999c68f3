"""`hpo launch study`: worker plans and environments, concurrent launches, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo.runtime.launch import WorkerPlan, plan_workers, worker_env
from hpo.storage.open import open_storage
from hpo.study.records import BUDGET_ATTR
from tests.helpers import WAIT_SECONDS, HpoProcesses, alive, children, wait_for, with_password

PASSWORD = "pw-Lx3-secret"
LONG_EPOCHS = 10_000  # the most a study file allows: a trial that runs until interrupted


def test_one_worker_per_gpu_else_cpu_workers() -> None:
    assert plan_workers(3, []) == [WorkerPlan(0, None), WorkerPlan(1, None), WorkerPlan(2, None)]
    assert plan_workers(1, [2, 3]) == [WorkerPlan(0, 2), WorkerPlan(1, 3)]


def test_worker_env_sets_device_threads_and_storage() -> None:
    gpu = worker_env(WorkerPlan(1, 3), 2, "postgresql://u:p@h/db", {"HPO_HEARTBEAT": "1"})
    assert gpu["CUDA_VISIBLE_DEVICES"] == "3"
    assert gpu["HPO_STORAGE"] == "postgresql://u:p@h/db"
    assert gpu["HPO_HEARTBEAT"] == "1"
    cpu = worker_env(WorkerPlan(0, None), os.cpu_count() or 1, "sqlite:///x.db")
    assert cpu["CUDA_VISIBLE_DEVICES"] == ""
    assert cpu["HPO_THREADS"] == "1"  # as many workers as cores: one thread each


@pytest.mark.postgres
def test_concurrent_launches_create_one_study(postgres_url: str, write_study) -> None:
    url = with_password(postgres_url, password=PASSWORD)
    path = write_study("race", trials=7)
    with HpoProcesses() as processes:
        for _ in range(4):
            processes.start(
                "launch", "study", str(path), "--workers", "0", env={"HPO_STORAGE": url}
            )
        launches = processes.finish()
    assert [launch.returncode for launch in launches] == [0] * 4, launches
    text = "".join(launch.stdout + launch.stderr for launch in launches)
    assert "exists" not in text and "unique" not in text.lower() and "Traceback" not in text
    assert PASSWORD not in text
    storage = open_storage(postgres_url)
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["race"]
    study = optuna.load_study(study_name="race", storage=storage)
    assert study.user_attrs[BUDGET_ATTR] == 7
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 7  # queued once, not 4x


def _launch_until_running(
    processes: HpoProcesses, postgres_url: str, path: Path, *args: str, running: int
) -> tuple[subprocess.Popen[str], optuna.Study]:
    """`hpo launch study PATH ARGS` in the background, the storage (with a password) passed
    in the environment; returns it and its study once `running` of its trials run."""
    env = {
        "HPO_STORAGE": with_password(postgres_url, password=PASSWORD),
        "HPO_ARTIFACTS": str(path.parent / "artifacts"),
    }
    launch = processes.start("--heartbeat", "1", "launch", "study", str(path), *args, env=env)
    storage = open_storage(postgres_url)

    def study_with_trials_running() -> optuna.Study | None:
        if not optuna.get_all_study_summaries(storage):
            return None
        study = optuna.load_study(study_name=path.stem, storage=storage)
        return study if len(study.get_trials(states=(TrialState.RUNNING,))) >= running else None

    return launch, wait_for(study_with_trials_running, f"{running} running trial(s)")


def _ctrl_c(launch: subprocess.Popen[str]) -> tuple[str, str]:
    """Interrupt the launcher as a terminal's Ctrl-C does; its (stdout, stderr) once it exits."""
    launch.send_signal(signal.SIGINT)
    return launch.communicate(timeout=WAIT_SECONDS)


@pytest.mark.postgres
def test_ctrl_c_stops_every_worker_and_requeues_their_trials(
    postgres_url: str, write_study
) -> None:
    # Trials that cannot end before the Ctrl-C: a tiny rings epoch takes milliseconds, so
    # 200 epochs let a loaded machine finish the whole study first (exit 0, seen in CI).
    path = write_study("ctrlc", trials=4, epochs=LONG_EPOCHS)
    with HpoProcesses() as processes:
        launch, study = _launch_until_running(
            processes, postgres_url, path, "--workers", "2", running=2
        )
        workers = children(launch.pid)
        assert len(workers) == 2
        for pid in workers:  # the password travels in the environment, never in argv
            assert PASSWORD not in Path(f"/proc/{pid}/cmdline").read_text()
        out, err = _ctrl_c(launch)
        assert launch.returncode == 130, err
        # Inside the block: the launcher, not the kit's clean-up, must stop its workers.
        assert not [pid for pid in workers if alive(pid)]
    assert PASSWORD not in out + err
    trials = study.get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert len(interrupted) == 2
    assert all(t.user_attrs["fail_reason"].startswith("interrupted") for t in interrupted)
    # Re-queued: the budget still holds 4 trials to run when the study is launched again.
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 4


@pytest.mark.postgres
def test_ctrl_c_on_a_single_in_process_worker_requeues_its_trial(
    postgres_url: str, write_study
) -> None:
    """One CPU worker runs inside the launcher; Ctrl-C must still stop it cleanly."""
    path = write_study("ctrlc1", trials=3, epochs=LONG_EPOCHS)
    with HpoProcesses() as processes:
        launch, study = _launch_until_running(processes, postgres_url, path, running=1)
        assert children(launch.pid) == []  # no second process: the worker runs here
        out, err = _ctrl_c(launch)
    assert launch.returncode == 130, err
    assert "Traceback" not in err and PASSWORD not in out + err
    trials = study.get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    [interrupted] = [t for t in trials if t.state == TrialState.FAIL]
    assert interrupted.user_attrs["fail_reason"].startswith("interrupted")
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 3  # re-queued
