"""`hpo retrain`: the chosen configuration trained again on train + validation, recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna

from tests.helpers import accuracy_in_fresh_process, run_hpo
from tests.hpo.training.test_export import DIGITS, env_of, launched


def test_retrain_exports_a_model_whose_test_accuracy_the_trial_records(
    tmp_path: Path, write_study: Any, sqlite_url: str
) -> None:
    artifacts = tmp_path / "arts"
    best = launched(
        sqlite_url, artifacts, write_study("again", trials=2, dataset="digits")
    ).best_trial
    out = tmp_path / "final"
    env = env_of(sqlite_url, artifacts)

    run = run_hpo("retrain", "again", "--epochs", "3", "--out", str(out), env=env)  # the best

    assert run.returncode == 0, run.stderr
    assert (
        f"trial {best.number} of again retrained on train + validation for 3 epoch(s)" in run.stdout
    )
    trial = optuna.load_study(study_name="again", storage=sqlite_url).trials[best.number]
    recorded = trial.user_attrs["retrain_test_accuracy"]
    assert f"test accuracy {recorded:.4f}" in run.stdout
    assert trial.user_attrs["retrain_epochs"] == 3 and trial.user_attrs["retrain_seconds"] > 0
    about = json.loads((out / "model.json").read_text())
    assert about["trial"] == best.number and about["metrics"]["retrain_test_accuracy"] == recorded
    assert about["params"]["lr"] == trial.params["lr"]
    assert accuracy_in_fresh_process(out, DIGITS) == recorded
    shown = run_hpo("best", "again", env=env).stdout
    assert "retrain_test_accuracy" in shown and f"{recorded:.4g}" in shown
