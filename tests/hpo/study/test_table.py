"""A study's trials as CSV or JSON lines."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import optuna
import pytest

from hpo.study.table import trial_rows, write_table


def test_one_row_per_trial_with_params_and_scalar_attrs(tmp_path: Path) -> None:
    study = optuna.create_study()
    for i in range(3):
        trial = study.ask()
        trial.suggest_float("lr", 0.1, 1.0)
        trial.set_user_attr("test_accuracy", 0.5 + i / 10)
        trial.set_user_attr("diag_final_w_norm", 1.0)  # diagnostics stay out
        trial.set_user_attr("curve", [1, 2])  # lists too
        if i < 2:
            study.tell(trial, i)
    rows = trial_rows(study.get_trials())
    assert [(r["number"], r["state"], r["value"]) for r in rows] == [
        (0, "COMPLETE", 0.0), (1, "COMPLETE", 1.0), (2, "RUNNING", None),
    ]  # fmt: skip
    assert set(rows[0]) == {
        "number", "state", "value", "started", "completed", "duration_s",
        "param_lr", "attr_test_accuracy",
    }  # fmt: skip
    assert rows[2]["duration_s"] is None and rows[0]["duration_s"] >= 0

    write_table(rows, tmp_path / "t.csv", "csv")
    read = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert [r["state"] for r in read] == ["COMPLETE", "COMPLETE", "RUNNING"]
    assert read[2]["value"] == "" and float(read[1]["attr_test_accuracy"]) == 0.6
    write_table(rows, tmp_path / "t.jsonl", "json")
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == rows


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # metric names
def test_a_multi_objective_table_marks_the_feasible_front() -> None:
    from hpo.study.front import front_marks

    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["val_accuracy", "params"])
    # (accuracy, params, constraint): 0 dominated by 1, 2 infeasible, 3 on the front
    for accuracy, params, constraint in (
        (0.5, 90, -1),
        (0.6, 80, -1),
        (0.99, 10, 5),
        (0.7, 95, -1),
    ):
        study.add_trial(
            optuna.trial.create_trial(
                values=[accuracy, params], system_attrs={"constraints": [constraint]}
            )
        )
    rows = trial_rows(study.get_trials(), front_marks(study))
    assert [(r["on_front"], r["feasible"]) for r in rows] == [
        (False, True), (True, True), (False, False), (True, True),
    ]  # fmt: skip
    assert rows[2]["value_val_accuracy"] == 0.99 and rows[2]["value_params"] == 10
    assert rows[0]["value"] is None  # no single value
    assert front_marks(optuna.create_study()) is None
