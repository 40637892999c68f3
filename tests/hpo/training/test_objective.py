"""The objective bridge: a diverging or broken trial never kills the worker, and each trial's
measurements are recorded, every user attr written once."""

from __future__ import annotations

import errno
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

import hpo.training.keep
import hpo.training.loop
from hpo.config.spec import load_spec
from hpo.runtime.worker import run_worker
from hpo.storage.open import open_storage
from hpo.study.create import open_study
from hpo.study.records import diag_attr
from hpo.training.checkpoint import CheckpointStore
from hpo.training.data import load_dataset
from hpo.training.diagnostics import PHASES, STATS
from hpo.training.objective import CHECKPOINT_ERROR_ATTR, KEEP_ERROR_ATTR, Objective
from tests.helpers import mounted, study_text, with_keep

# Plain SGD at a learning rate of 10 (the most a study file allows) on a deep He-initialised
# ReLU net drives the loss to inf/NaN within the first epochs, whatever the draw (5 of 5
# seeds tried): a real divergence, not a simulated one.
DIVERGING = """
[space]
depth = 4
width = 64
activation = "relu"
init = "he_normal"
optimizer = "sgd"
lr = { choices = [10.0, 0.01] }
"""


def test_diverging_trials_fail_with_their_reason_and_the_worker_goes_on(
    sqlite_url, write_study
) -> None:
    path = write_study("diverge", trials=6, epochs=3)
    text = path.read_text()
    path.write_text(text[: text.index("[space]")] + DIVERGING)
    storage = open_storage(sqlite_url)
    open_study(storage, load_spec(path))

    report = run_worker(storage, "diverge", artifacts=None)

    trials = optuna.load_study(study_name="diverge", storage=storage).get_trials()
    assert report.trials == 6 and len(trials) == 6
    diverged = [t for t in trials if t.params["lr"] == 10.0]
    healthy = [t for t in trials if t.params["lr"] == 0.01]
    assert diverged and healthy, "the seeded draw should try both learning rates"
    for trial in diverged:
        assert trial.state == TrialState.FAIL
        assert trial.user_attrs["fail_reason"].startswith("diverged: training loss became")
    for trial in healthy:
        assert trial.state == TrialState.COMPLETE
        assert trial.value is not None and trial.value >= 0.0


class CountingStorage(optuna.storages.InMemoryStorage):
    """Counts user-attr writes per key."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: Counter[str] = Counter()

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.writes[key] += 1
        super().set_trial_user_attr(trial_id, key, value)


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return True


MEASURED = {"epochs", "train_seconds", "train_device_seconds"}


def run_one(
    write_study, pruner: optuna.pruners.BasePruner, *, train_extra: str = ""
) -> tuple[FrozenTrial, Counter[str]]:
    path = write_study("one", trials=1, epochs=2)
    path.write_text(path.read_text().replace("[train]\n", f"[train]\n{train_extra}"))
    spec = load_spec(path)
    storage = CountingStorage()
    study = optuna.create_study(storage=storage, direction="maximize", pruner=pruner)
    study.optimize(Objective(spec, load_dataset("rings", max_train=300)), n_trials=1)
    return study.trials[0], storage.writes


def test_completed_trial_writes_each_attr_once(write_study) -> None:
    trial, writes = run_one(write_study, optuna.pruners.NopPruner())
    assert trial.state == TrialState.COMPLETE
    attrs = trial.user_attrs
    assert attrs.keys() >= MEASURED | {"samples_per_s", "test_accuracy", "n_params", "device"}
    assert attrs["epochs"] == 2 and 0 < attrs["train_device_seconds"] <= attrs["train_seconds"]
    assert "peak_gpu_mb" not in attrs  # a CPU trial
    assert {diag_attr(p, s) for p in PHASES for s in STATS} <= attrs.keys()
    assert set(writes) == set(attrs) and set(writes.values()) == {1}


def test_diagnostics_off_records_everything_but_the_layer_stats(write_study) -> None:
    trial, _ = run_one(write_study, optuna.pruners.NopPruner(), train_extra="diagnostics = false\n")
    assert trial.state == TrialState.COMPLETE
    assert trial.user_attrs.keys() >= MEASURED | {"samples_per_s", "test_accuracy", "n_params"}
    assert not [key for key in trial.user_attrs if key.startswith("diag_")]


def test_pruned_trial_records_what_it_cost(write_study) -> None:
    trial, writes = run_one(write_study, AlwaysPrune())
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["epochs"] == 1 and trial.user_attrs["train_device_seconds"] > 0
    assert "test_accuracy" not in trial.user_attrs
    assert diag_attr("final", "act_std") in trial.user_attrs
    assert set(writes.values()) == {1}


def test_patience_completes_the_trial_early_with_its_last_value(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "patience.toml"
    path.write_text(study_text("patience", "patience = 2\nwidth = 4", trials=1, epochs=6))
    # (val_loss, val_accuracy) per epoch: best loss at epoch 2, no better at 3 and 4.
    curve = iter([(1.0, 0.6), (0.5, 0.7), (0.7, 0.8), (0.6, 0.9), (0.4, 1.0), (0.3, 1.0)])
    monkeypatch.setattr(hpo.training.loop, "evaluate", lambda *args, **kwargs: next(curve))
    study = optuna.create_study(direction="maximize")
    study.optimize(Objective(load_spec(path), load_dataset("rings", max_train=300)), n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE  # stopped, not pruned
    assert trial.user_attrs["stopped_early_at"] == 4 and trial.user_attrs["epochs"] == 4
    assert trial.value == 0.9  # the last epoch's metric, not the best-loss epoch's 0.7
    assert trial.intermediate_values == {1: 0.6, 2: 0.7, 3: 0.8, 4: 0.9}


def test_a_trial_without_patience_records_no_early_stop(write_study) -> None:
    trial, _ = run_one(write_study, optuna.pruners.NopPruner())
    assert "stopped_early_at" not in trial.user_attrs


# ------------------------------------------------------------------ a disk that fills up


def _no_space(*_args: object, **_kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _run_keeping_one(sqlite_url: str, write_study, name: str, artifacts: Path) -> list[FrozenTrial]:
    """Two 2-epoch trials of a study that keeps its best weights, checkpointing every epoch
    into `artifacts`; each must complete. Returns the trials."""
    storage = open_storage(sqlite_url)
    open_study(storage, load_spec(with_keep(write_study(name, trials=2, epochs=2), 1)))
    report = run_worker(storage, name, artifacts=artifacts, checkpoint_every=0)
    assert report.states == {"COMPLETE": 2}
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def test_a_full_disk_costs_the_checkpoints_and_kept_weights_not_the_trials(
    sqlite_url, write_study, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    """Seen: every trial failed with an OSError (or torch's inline_container.cc error) as
    its reason, and the budget was spent on failures."""
    monkeypatch.setattr(CheckpointStore, "save", _no_space)
    monkeypatch.setattr(hpo.training.keep, "save_model", _no_space)
    with caplog.at_level(logging.WARNING, logger="hpo.training.objective"):
        trials = _run_keeping_one(sqlite_url, write_study, "nospace", tmp_path / "arts")
    for trial in trials:
        assert trial.state == TrialState.COMPLETE
        assert trial.user_attrs[CHECKPOINT_ERROR_ATTR] == (
            "checkpoint not written ([Errno 28] No space left on device); "
            "the trial trained on without them"
        )
        assert trial.user_attrs[KEEP_ERROR_ATTR].startswith("weights not kept")
        assert trial.user_attrs["epochs"] == 2
    logged = [r.getMessage() for r in caplog.records if r.name == "hpo.training.objective"]
    assert len(logged) == 2, logged  # once per kind for the worker, not once per trial
    assert [CHECKPOINT_ERROR_ATTR in line for line in logged].count(True) == 1


def test_a_real_full_file_system_leaves_no_partial_file(
    sqlite_url, write_study, tmp_path: Path
) -> None:
    """The artifact folder on a 1 MB tmpfs, filled up: torch's writer and Optuna's artifact
    copy both fail for real; the trials complete and no half-written file stays behind."""
    with mounted(tmp_path / "arts", "-t", "tmpfs", "-o", "size=1m", "tmpfs") as artifacts:
        with open(artifacts / "filler", "wb", buffering=0) as filler:
            try:
                while True:
                    filler.write(bytes(4096))
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        trials = _run_keeping_one(sqlite_url, write_study, "fullfs", artifacts)
        left = sorted(p.name for p in artifacts.rglob("*") if p.is_file())
    assert left == ["filler"]
    for trial in trials:
        assert "No space left on device" in trial.user_attrs[CHECKPOINT_ERROR_ATTR]
        assert "No space left on device" in trial.user_attrs[KEEP_ERROR_ATTR]
