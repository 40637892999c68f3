"""Multi-objective trials: one value per metric, limits set as Optuna constraints, and a
network over max_params ended before any training."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from hpo.config.spec import load_spec
from hpo.runtime.worker import run_worker
from hpo.storage.open import open_storage
from hpo.study.create import open_study
from tests.helpers import with_study_lines

# Rings (2 inputs, 2 classes): width 8 at depth 1-2 has at most 114 params, width 64 at
# least 322; a limit of 200 excludes every width-64 network.
SPACE = """[space]
depth = { low = 1, high = 2 }
width = { choices = [8, 64] }
lr = 0.05
batch_size = 64
"""
LIMIT = 200


def test_networks_over_max_params_never_train_and_stay_off_the_front(
    sqlite_url, write_study
) -> None:
    path = write_study("limited", trials=8, epochs=1)
    text = path.read_text()
    path.write_text(
        text[: text.index("[space]")] + SPACE + f"\n[constraints]\nmax_params = {LIMIT}\n"
    )
    with_study_lines(path, 'metrics = ["val_accuracy", "params", "latency_ms"]')
    storage = open_storage(sqlite_url)
    open_study(storage, load_spec(path))

    run_worker(storage, "limited", artifacts=None)

    study = optuna.load_study(study_name="limited", storage=storage)
    assert study.metric_names == ["val_accuracy", "params", "latency_ms"]
    trials = study.get_trials()
    assert len(trials) == 8 and {t.state for t in trials} == {TrialState.COMPLETE}
    wide = [t for t in trials if t.params["width"] == 64]
    narrow = [t for t in trials if t.params["width"] == 8]
    assert wide and narrow, "the seeded draw should try both widths"
    for trial in wide:
        assert trial.user_attrs["n_params"] > LIMIT
        # Optuna's list form (which optuna-dashboard reads): max_params first
        assert trial.system_attrs["constraints"] == [trial.user_attrs["n_params"] - LIMIT]
        assert "train_seconds" not in trial.user_attrs  # built, counted, never trained
        assert trial.user_attrs["infeasible"].startswith("params ")
    for trial in narrow:
        assert trial.constraints["0"] <= 0 and "infeasible" not in trial.user_attrs
        assert trial.user_attrs["train_seconds"] > 0
        assert trial.values[1] == trial.user_attrs["n_params"]
        assert trial.values[2] > 0 and trial.user_attrs["latency_ms"] > 0
    front = study.best_trials
    assert front and all(t.params["width"] == 8 for t in front)


def test_a_latency_limit_no_network_meets_ends_every_trial_untrained(
    sqlite_url, write_study
) -> None:
    path = write_study("fast", trials=3, epochs=1)
    path.write_text(path.read_text() + "\n[constraints]\nmax_latency_ms = 1e-9\n")
    storage = open_storage(sqlite_url)
    open_study(storage, load_spec(path))  # single-objective: a limit needs no metrics

    run_worker(storage, "fast", artifacts=None)

    trials = optuna.load_study(study_name="fast", storage=storage).get_trials()
    assert len(trials) == 3
    for trial in trials:
        assert trial.state == TrialState.COMPLETE and trial.user_attrs["latency_ms"] > 0
        assert trial.user_attrs["infeasible"].startswith("latency_ms ")
        assert "train_seconds" not in trial.user_attrs
        assert trial.system_attrs["constraints"][0] > 0
