"""Fault tests against the real PostgreSQL: killed workers, a database outage, load.

Each test uses its own fresh database (the `postgres_url` fixture) and real worker
processes. Waits are bounded; nothing asserts on timing.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import torch
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from hpo.checkpoint import CheckpointStore
from hpo.spec import StudySpec, load_spec
from hpo.storage import open_storage
from hpo.study import counted_trials, open_study, superseded_numbers

pytestmark = pytest.mark.postgres
WAIT_SECONDS = 180


def _worker(url: str, study: str, artifacts: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, HPO_STORAGE=url, HPO_HEARTBEAT="1", HPO_THREADS="1")
    env["HPO_ARTIFACTS"] = str(artifacts)
    env["HPO_CHECKPOINT_EVERY"] = "0"  # every epoch: the test kills right after one
    return subprocess.Popen(
        [sys.executable, "-m", "hpo", "worker", "--study", study, "--gpus", "none"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition: Callable[[], object], what: str) -> object:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {WAIT_SECONDS} s waiting for {what}")


def _finish(workers: list[subprocess.Popen[str]]) -> list[tuple[int, str]]:
    """Wait for every worker (bounded); kill the rest so nothing outlives the test."""
    results = []
    try:
        for worker in workers:
            _, err = worker.communicate(timeout=WAIT_SECONDS)
            results.append((worker.returncode, err))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    return results


def _assert_accounted(study: optuna.Study, budget: int) -> list[optuna.trial.FrozenTrial]:
    trials = study.get_trials()
    counted = counted_trials(trials)
    assert len(counted) == budget
    assert all(t.state == TrialState.COMPLETE for t in counted), [
        (t.number, t.state.name, t.user_attrs.get("fail_reason"), t.system_attrs) for t in counted
    ]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    return trials


def test_sigkilled_worker_trial_is_retried_and_resumes(
    postgres_url: str, write_study, tmp_path: Path
) -> None:
    budget = 3
    study = open_study(
        open_storage(postgres_url), load_spec(write_study("kill", trials=budget, epochs=40))
    )
    store = CheckpointStore(tmp_path, "kill")
    workers = [_worker(postgres_url, "kill", tmp_path) for _ in range(2)]

    def victim() -> tuple[int, int, int] | None:
        """(pid, trial number, checkpoint epoch) of a worker well inside a trial."""
        for trial in study.get_trials(states=(TrialState.RUNNING,)):
            if not store.path(trial.number).exists() or "worker" not in trial.user_attrs:
                continue
            epoch = torch.load(store.path(trial.number), weights_only=True)["epoch"]
            if epoch < 30:  # far from its end: still running when the signal lands
                return int(trial.user_attrs["worker"].rsplit(":", 1)[1]), trial.number, epoch
        return None

    try:
        pid, killed_number, epoch = _wait_for(victim, "a trial with a checkpoint")  # type: ignore[misc]
        os.kill(pid, signal.SIGKILL)
    finally:
        results = _finish(workers)
    killed = next(w for w in workers if w.pid == pid)
    assert killed.returncode == -signal.SIGKILL
    assert [code for w, (code, _) in zip(workers, results, strict=True) if w is not killed] == [0]

    trials = _assert_accounted(study, budget)
    dead = trials[killed_number]
    assert dead.state == TrialState.FAIL
    assert killed_number in superseded_numbers(trials)
    retry = next(t for t in trials if killed_number in t.system_attrs.get("retry_history", []))
    assert retry.state == TrialState.COMPLETE
    assert retry.params == dead.params
    assert retry.user_attrs["resumed_from_epoch"] >= epoch
    assert list(store.folder.iterdir()) == []


def test_database_outage_mid_study_loses_nothing(
    postgres_url: str, pg_admin: sqlalchemy.Engine, write_study, tmp_path: Path
) -> None:
    """Every connection of the study's database is cut and refused for a few seconds.

    This is a restart as the workers see it, confined to this test's database so that
    tests running beside it on the shared server are unaffected.
    """
    database = make_url(postgres_url).database
    path = write_study("outage", trials=6, epochs=25)
    results = _study_through(
        postgres_url, path, tmp_path, lambda: _outage(pg_admin, database, seconds=4)
    )
    assert any("storage unreachable" in err for _, err in results)  # they did see it


def _study_through(
    postgres_url: str, path: Path, tmp_path: Path, disrupt: Callable[[], None]
) -> list[tuple[int, str]]:
    """Two workers run the study of `path`; `disrupt()` strikes while a trial is running
    and another has completed. Asserts both exit 0, the budget completes and no value
    reported before the disruption changed; returns the workers' (exit code, stderr)."""
    spec = load_spec(path)
    study = open_study(open_storage(postgres_url), spec)
    workers = [_worker(postgres_url, spec.name, tmp_path) for _ in range(2)]
    try:
        _wait_for(
            lambda: (
                study.get_trials(states=(TrialState.COMPLETE,))
                and study.get_trials(states=(TrialState.RUNNING,))
            ),
            "a completed trial while others run",
        )
        before = {t.number: t.value for t in study.get_trials(states=(TrialState.COMPLETE,))}
        disrupt()
    finally:
        results = _finish(workers)
    assert [code for code, _ in results] == [0, 0], [err[-2000:] for _, err in results]
    trials = _assert_accounted(study, spec.trials)
    assert {t.number: t.value for t in trials if t.number in before} == before
    return results


def _cluster() -> list[str] | None:
    """`pg_ctlcluster VERSION main` for the local server, if this process may restart it."""
    if os.geteuid() != 0 or not Path("/etc/postgresql").is_dir():
        return None
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir())
    if not versions or subprocess.run(["which", "pg_ctlcluster"], capture_output=True).returncode:
        return None
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


@pytest.mark.skipif(_cluster() is None, reason="needs root and the local PostgreSQL cluster")
def test_real_server_restart_mid_study_loses_nothing(
    postgres_url: str, pg_admin: sqlalchemy.Engine, write_study, tmp_path: Path
) -> None:
    """The PostgreSQL server itself restarts while two workers run a study."""

    def server_started() -> object:
        with pg_admin.connect() as connection:
            return connection.exec_driver_sql("SELECT pg_postmaster_start_time()").scalar()

    def restart() -> None:
        try:
            subprocess.run([*_cluster(), "restart"], check=True, timeout=120, capture_output=True)
        finally:
            # Whatever happened, leave the server up for the tests after this one.
            subprocess.run([*_cluster(), "start"], timeout=120, capture_output=True)

    first_start = server_started()
    _study_through(postgres_url, write_study("restart", trials=6, epochs=25), tmp_path, restart)
    assert server_started() != first_start  # the server really restarted


def _outage(admin: sqlalchemy.Engine, database: str, *, seconds: float) -> None:
    with admin.connect() as connection:
        connection.exec_driver_sql(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        try:
            connection.execute(
                sqlalchemy.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"
                ),
                {"d": database},
            )
            time.sleep(seconds)
        finally:
            connection.exec_driver_sql(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')


def _zero_cost(spec: StudySpec, stop: threading.Event) -> Callable[[optuna.Trial], float]:
    return lambda trial: trial.suggest_float("x", 0.0, 1.0)


def _load_worker(url: str, study_name: str, index: int, errors: multiprocessing.Queue) -> None:
    from hpo.worker import run_worker

    try:
        storage = open_storage(url, heartbeat_interval=5)
        run_worker(storage, study_name, worker_index=index, objective_factory=_zero_cost)
    except BaseException as exc:
        errors.put(f"worker {index}: {type(exc).__name__}: {exc}")
        raise


def test_eight_workers_run_500_zero_cost_trials(postgres_url: str, write_study) -> None:
    budget, n_workers = 500, 8
    study = open_study(open_storage(postgres_url), load_spec(write_study("load", trials=budget)))
    context = multiprocessing.get_context("fork")  # no re-import of torch per worker
    errors = context.Queue()
    processes = [
        context.Process(target=_load_worker, args=(postgres_url, "load", i, errors))
        for i in range(n_workers)
    ]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join(WAIT_SECONDS)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
    assert errors.empty(), errors.get()
    assert [p.exitcode for p in processes] == [0] * n_workers
    trials = _assert_accounted(study, budget)
    assert len(trials) == budget  # nothing failed, so nothing was retried
