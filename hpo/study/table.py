"""A study's trials as a table: one row per trial, written as CSV or JSON lines.

A row holds the trial's number, state, value, start, end and duration, each param
(`param_NAME`) and each scalar user attr but the layer diagnostics (`attr_NAME`): what a
spreadsheet or pandas needs to look at a study without Optuna.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial

from hpo.study.front import FrontMarks, marked_columns
from hpo.study.records import DIAG_PREFIX

TABLE_FILES = {"csv": "trials.csv", "json": "trials.jsonl"}  # --format -> file name
FIXED_COLUMNS = ("number", "state", "value", "started", "completed", "duration_s")


def trial_rows(
    trials: Sequence[FrozenTrial], front: FrontMarks | None = None
) -> list[dict[str, Any]]:
    """One flat dict per trial, in number order; with `front` (a multi-objective study),
    also each metric's value and whether the trial is on the Pareto front."""
    return [_row(t, front) for t in sorted(trials, key=lambda t: t.number)]


def _row(trial: FrozenTrial, front: FrontMarks | None) -> dict[str, Any]:
    start, end = trial.datetime_start, trial.datetime_complete
    row: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.name,
        "value": trial.value if trial.values is not None and len(trial.values) == 1 else None,
        "started": start.isoformat(timespec="seconds") if start else None,
        "completed": end.isoformat(timespec="seconds") if end else None,
        "duration_s": round((end - start).total_seconds(), 3) if start and end else None,
    }
    if front is not None:
        row.update(marked_columns(trial, front))
    row.update({f"param_{k}": v for k, v in trial.params.items()})
    row.update(
        {
            f"attr_{k}": v
            for k, v in trial.user_attrs.items()
            if not k.startswith(DIAG_PREFIX) and isinstance(v, str | int | float | bool)
        }
    )
    return row


def write_table(rows: Sequence[dict[str, Any]], path: Path, table_format: str) -> None:
    """CSV (every column of every row; empty where a trial has none) or JSON lines."""
    if table_format == "json":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        return
    extra = sorted({key for row in rows for key in row} - set(FIXED_COLUMNS))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*FIXED_COLUMNS, *extra])
        writer.writeheader()
        writer.writerows(rows)
