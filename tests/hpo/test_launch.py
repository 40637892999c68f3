"""`hpo launch study`: worker plans and environments, concurrent launches, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from hpo.launch import WorkerPlan, plan_workers, worker_env
from hpo.storage import open_storage
from hpo.study import BUDGET_ATTR

PASSWORD = "pw-Lx3-secret"
WAIT_SECONDS = 120


def _with_password(url: str) -> str:
    return make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


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
    url = _with_password(postgres_url)
    path = write_study("race", trials=7)
    env = dict(os.environ, HPO_STORAGE=url)
    launches = [
        subprocess.Popen(
            [sys.executable, "-m", "hpo", "launch", "study", str(path), "--workers", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = []
    try:
        for launch in launches:
            outputs.append(launch.communicate(timeout=WAIT_SECONDS))
    finally:
        for launch in launches:
            if launch.poll() is None:
                launch.kill()
                launch.wait()
    assert [launch.returncode for launch in launches] == [0] * 4, outputs
    text = "".join(out + err for out, err in outputs)
    assert "exists" not in text and "unique" not in text.lower() and "Traceback" not in text
    assert PASSWORD not in text
    storage = open_storage(postgres_url)
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["race"]
    study = optuna.load_study(study_name="race", storage=storage)
    assert study.user_attrs[BUDGET_ATTR] == 7
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 7  # queued once, not 4x


def _launch(url: str, path: Path, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    """`hpo launch study PATH` in the background, the storage passed in the environment."""
    env = dict(os.environ, HPO_STORAGE=url, HPO_ARTIFACTS=str(tmp_path / "artifacts"))
    return subprocess.Popen(
        [sys.executable, "-m", "hpo", "--heartbeat", "1", "launch", "study", str(path), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_running(postgres_url: str, name: str, count: int) -> optuna.Study:
    """The study once `count` of its trials are running (bounded wait)."""
    storage = open_storage(postgres_url)
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if optuna.get_all_study_summaries(storage):
            study = optuna.load_study(study_name=name, storage=storage)
            if len(study.get_trials(states=(TrialState.RUNNING,))) >= count:
                return study
    raise AssertionError(f"{count} trial(s) of {name} should be running by now")


@pytest.mark.postgres
def test_ctrl_c_stops_every_worker_and_requeues_their_trials(
    postgres_url: str, write_study, tmp_path: Path
) -> None:
    path = write_study("ctrlc", trials=4, epochs=200)
    launch = _launch(_with_password(postgres_url), path, tmp_path, "--workers", "2")
    try:
        study = _wait_running(postgres_url, "ctrlc", 2)
        workers = _children(launch.pid)
        assert len(workers) == 2
        for pid in workers:  # the password travels in the environment, never in argv
            assert PASSWORD not in Path(f"/proc/{pid}/cmdline").read_text()
        launch.send_signal(signal.SIGINT)
        out, err = launch.communicate(timeout=WAIT_SECONDS)
    finally:
        if launch.poll() is None:
            launch.kill()
            launch.wait()
    assert launch.returncode == 130, err
    assert not [pid for pid in workers if _alive(pid)]
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
    postgres_url: str, write_study, tmp_path: Path
) -> None:
    """One CPU worker runs inside the launcher; Ctrl-C must still stop it cleanly."""
    path = write_study("ctrlc1", trials=3, epochs=200)
    launch = _launch(_with_password(postgres_url), path, tmp_path)
    try:
        study = _wait_running(postgres_url, "ctrlc1", 1)
        assert _children(launch.pid) == []  # no second process: the worker runs here
        launch.send_signal(signal.SIGINT)
        out, err = launch.communicate(timeout=WAIT_SECONDS)
    finally:
        if launch.poll() is None:
            launch.kill()
            launch.wait()
    assert launch.returncode == 130, err
    assert "Traceback" not in err and PASSWORD not in out + err
    trials = study.get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    [interrupted] = [t for t in trials if t.state == TrialState.FAIL]
    assert interrupted.user_attrs["fail_reason"].startswith("interrupted")
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 3  # re-queued
