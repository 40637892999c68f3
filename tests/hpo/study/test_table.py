"""A study's trials as CSV or JSON lines."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import optuna

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
