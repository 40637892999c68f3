"""The worker: budget, failure handling, checkpoints, signals and one-line errors."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import pytest
import torch
from optuna.trial import TrialState

from hpo.runtime.worker import run_worker
from hpo.storage.open import open_storage
from hpo.study.create import QUEUE_DEPTH
from hpo.study.records import budget_of, counted_trials
from hpo.training.checkpoint import CheckpointStore
from hpo.training.data import load_dataset
from hpo.training.loop import Checkpoint, TrainConfig, train
from models import create_model
from tests.helpers import (
    WAIT_SECONDS,
    HpoProcesses,
    run_hpo,
    run_main,
    wait_for,
    with_password,
    worker_settings,
    zero_cost,
)

PASSWORD = "pw-Zq8-secret"


def _run_workers_in_threads(storage: object, name: str, workers: int) -> list[object]:
    """Run `workers` zero-cost workers of study `name` side by side; their reports."""
    reports = []
    threads = [
        threading.Thread(
            target=lambda i=i: reports.append(
                run_worker(storage, name, worker_index=i, objective_factory=zero_cost())
            )
        )
        for i in range(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_SECONDS)
    return reports


def test_two_workers_finish_exactly_the_budget(sqlite_url: str, create_study) -> None:
    storage = open_storage(sqlite_url, heartbeat_interval=1)
    study = create_study(storage, trials=12)
    reports = _run_workers_in_threads(storage, study.study_name, 2)
    trials = study.get_trials()
    assert len(trials) == 12
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert sum(r.trials for r in reports) == 12
    # Parallel workers have different sampler seeds: they do not propose the same point.
    assert len({t.params["x"] for t in trials}) == 12
    assert all(":" in t.user_attrs["worker"] for t in trials)


def test_workers_run_a_budget_larger_than_the_queue_exactly(sqlite_url: str, create_study) -> None:
    budget = QUEUE_DEPTH * 2 + 5  # two top-ups and a partial one
    storage = open_storage(sqlite_url, heartbeat_interval=1)
    study = create_study(storage, trials=budget)
    assert budget_of(study).unqueued == budget - QUEUE_DEPTH
    reports = _run_workers_in_threads(storage, study.study_name, 2)
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(budget))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert sum(r.trials for r in reports) == budget
    assert budget_of(study).done


def test_out_of_memory_fails_that_trial_and_the_worker_goes_on(
    sqlite_url: str, create_study
) -> None:
    storage = open_storage(sqlite_url)
    study = create_study(storage, trials=3)
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    report = run_worker(storage, study.study_name, objective_factory=zero_cost(fail_first=oom))
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {0: TrialState.FAIL, 1: TrialState.COMPLETE, 2: TrialState.COMPLETE}
    reason = study.get_trials()[0].user_attrs["fail_reason"]
    assert reason.startswith("CUDA out of memory: CUDA out of memory. Tried to allocate")
    assert report.states == {"FAIL": 1, "COMPLETE": 2}


def test_resuming_from_a_checkpoint_continues_the_same_run(tmp_path: Path) -> None:
    data = load_dataset("rings", seed=0, val_fraction=0.2, max_train=200)
    config = TrainConfig(epochs=4, batch_size=32, lr=0.01, seed=7)

    def fresh() -> torch.nn.Module:
        torch.manual_seed(3)
        return create_model("mlp", in_shape=data.in_shape, num_outputs=1, depth=2, width=8)

    unbroken = train(fresh(), data, config)
    saved: list[Checkpoint] = []
    store = CheckpointStore(tmp_path, "study/with odd name")
    params = {"depth": 2, "width": 8}
    train(fresh(), data, TrainConfig(**{**config.__dict__, "epochs": 2}), checkpoint=saved.append)
    store.save(5, saved[-1], params)
    assert store.path(5).parent.parent == tmp_path / "checkpoints"  # name cannot escape
    loaded = store.load(5, params, "cpu")
    assert loaded is not None and loaded.epoch == 2
    resumed = train(fresh(), data, config, resume=loaded)
    assert [r.epoch for r in resumed.history] == [1, 2, 3, 4]
    assert resumed.final.val_loss == pytest.approx(unbroken.final.val_loss, rel=1e-5)
    # A checkpoint made for other parameters is never resumed from.
    assert store.load(5, {"depth": 1, "width": 8}, "cpu") is None
    store.delete(5)
    assert not store.path(5).exists()


@pytest.mark.postgres
def test_worker_for_a_missing_study_is_one_line_and_exit_2(postgres_url: str) -> None:
    url = with_password(postgres_url, password=PASSWORD)
    open_storage(url)  # tables exist, study does not
    run = run_hpo("worker", "--study", "missing", env=worker_settings(url), timeout=WAIT_SECONDS)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("error: no hpo study named 'missing'")
    assert len(run.stderr.strip().splitlines()) == 1
    assert PASSWORD not in run.stderr + run.stdout
    assert "***" in run.stderr


def test_a_storage_outage_mid_trial_ends_the_worker_in_one_line_not_a_failed_trial(
    sqlite_url: str, create_study, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A storage given up on mid-trial (its retries spent) is no fault of the trial: the
    worker ends with exit 2 and one line, and the trial is left RUNNING, for the stale
    check to re-queue, never FAILed (which would spend the budget on an outage)."""
    from hpo.errors import StorageError
    from hpo.training.objective import Objective

    study = create_study(sqlite_url, "outage", trials=2)
    outage = "cannot reach storage sqlite:///hpo.db: disk I/O error (gave up after 300 s)"

    def cut_off(self: Objective, trial: object) -> float:
        raise StorageError(outage)

    monkeypatch.setattr(Objective, "__call__", cut_off)
    code, _, err = run_main("--storage", sqlite_url, "worker", "--study", "outage")

    assert (code, err) == (2, f"error: {outage}\n")
    trials = study.get_trials()
    assert sorted(t.state.name for t in trials) == ["RUNNING", "WAITING"]  # one claimed
    assert not [t for t in trials if "fail_reason" in t.user_attrs]


def test_worker_with_unreachable_postgres_is_one_line_and_exit_2() -> None:
    url = f"postgresql://hpo:{PASSWORD}@127.0.0.1:9/hpo"  # port 9: nothing listens
    run = run_hpo("worker", "--study", "x", env=worker_settings(url), timeout=WAIT_SECONDS)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("error: cannot reach storage postgresql+psycopg://hpo:***@")
    assert len(run.stderr.strip().splitlines()) == 1
    assert PASSWORD not in run.stderr + run.stdout


@pytest.mark.postgres
def test_sigterm_requeues_the_trial_and_its_retry_resumes_from_the_checkpoint(
    postgres_url: str, create_study, tmp_path: Path
) -> None:
    url = with_password(postgres_url, password=PASSWORD)
    artifacts = tmp_path / "artifacts"
    study = create_study(url, "sigterm", trials=1, epochs=40)
    store = CheckpointStore(artifacts, "sigterm")
    command = ("worker", "--study", "sigterm", "--gpus", "none")
    with HpoProcesses() as processes:
        worker = processes.start(*command, env=worker_settings(url, artifacts))
        wait_for(lambda: store.path(0).exists(), "the first epoch checkpoint")
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=WAIT_SECONDS)
    assert worker.returncode == 130, err  # stopped, not done: a scheduler restarts it
    assert "SIGTERM received" in err
    first, retry = study.get_trials()
    assert first.state == TrialState.FAIL
    assert first.user_attrs["fail_reason"].startswith("interrupted: stop requested")
    assert retry.state == TrialState.WAITING
    assert retry.params == first.params
    stopped_at = torch.load(store.path(0), weights_only=True)["epoch"]
    assert 1 <= stopped_at < 40

    rerun = run_hpo(*command, env=worker_settings(url, artifacts), timeout=WAIT_SECONDS)
    assert rerun.returncode == 0, rerun.stderr
    retry = study.get_trials()[1]
    assert retry.state == TrialState.COMPLETE
    assert retry.user_attrs["resumed_from_epoch"] == stopped_at
    assert sorted(retry.intermediate_values) == list(range(1, 41))  # whole curve reported
    assert [t.number for t in counted_trials(study.get_trials())] == [1]
    assert list(store.folder.iterdir()) == []  # finished trials leave no checkpoint behind
    # The password is in no output and no attribute of the study or its trials.
    stored = json.dumps(
        [study.user_attrs, study._storage.get_study_system_attrs(study._study_id)]
        + [[t.user_attrs, t.system_attrs] for t in study.get_trials()],
        default=str,
    )
    assert PASSWORD not in out + err + rerun.stdout + rerun.stderr + stored
