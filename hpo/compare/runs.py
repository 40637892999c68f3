"""`DIR/runs.csv`: every finished trial of a comparison, one row each, and back.

Columns `arm, seed, trial, state, value, best_so_far, compute_seconds, wall_seconds`, rows
in finishing order within each study (studies one after another). `arm` as given to
`--arms`; `value` the trial's final reported metric (a pruned trial's last one, empty for a
failed trial); `best_so_far` over the study's COMPLETE trials finished so far (empty before
the first); the two seconds cumulative for the study: training compute summed over its
finished trials, and wall time from the study's first start to this trial's finish
(simulated seconds in a replay). A live compare writes it from the storage, a replay from
the simulator; a replay's report is built from it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpo.compare.load import TRAIN_SECONDS_ATTR, Comparison, StudyRun, TrialRecord

COLUMNS = (
    "arm",
    "seed",
    "trial",
    "state",
    "value",
    "best_so_far",
    "compute_seconds",
    "wall_seconds",
)
RUNS_FILE = "runs.csv"


@dataclass(frozen=True)
class RunRow:
    arm: str
    seed: int
    trial: int
    state: str
    value: float | None
    best_so_far: float | None
    compute_seconds: float
    wall_seconds: float


@dataclass(frozen=True)
class Finished:
    """One finished trial of a study, as the rows need it."""

    number: int
    state: str
    value: float | None
    compute: float  # this trial's training seconds
    finish: float  # seconds since the study's first start


def study_rows(arm: str, seed: int, trials: Iterable[Finished], direction: str) -> list[RunRow]:
    """A study's rows in finishing order (ties: trial number), with the running sums."""
    better = (lambda a, b: a > b) if direction == "maximize" else (lambda a, b: a < b)
    rows, best, compute = [], None, 0.0
    for t in sorted(trials, key=lambda t: (t.finish, t.number)):
        compute += t.compute
        counts = t.state == "COMPLETE" and t.value is not None and math.isfinite(t.value)
        if counts and (best is None or better(t.value, best)):
            best = t.value
        rows.append(RunRow(arm, seed, t.number, t.state, t.value, best, compute, t.finish))
    return rows


def comparison_rows(comparison: Comparison) -> list[RunRow]:
    """The rows of a live comparison read from the storage."""
    rows: list[RunRow] = []
    for run in comparison.runs:
        starts = [t.started for t in run.trials if t.started is not None]
        first = min(starts) if starts else 0.0
        finished = [
            Finished(
                t.number,
                t.state,
                t.last_value,
                t.compute,
                (t.finished - first) if t.finished is not None else 0.0,
            )
            for t in run.trials
        ]
        rows += study_rows(run.arm, run.seed, finished, comparison.direction)
    return rows


def write_runs(folder: str | Path, rows: Sequence[RunRow]) -> Path:
    path = Path(folder) / RUNS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(COLUMNS)
        for r in rows:
            out.writerow(
                [
                    r.arm,
                    r.seed,
                    r.trial,
                    r.state,
                    _number(r.value),
                    _number(r.best_so_far),
                    _number(r.compute_seconds),
                    _number(r.wall_seconds),
                ]
            )
    return path


def read_runs(path: str | Path) -> list[RunRow]:
    with Path(path).open(newline="") as f:
        return [
            RunRow(
                row["arm"],
                int(row["seed"]),
                int(row["trial"]),
                row["state"],
                _float(row["value"]),
                _float(row["best_so_far"]),
                float(row["compute_seconds"]),
                float(row["wall_seconds"]),
            )
            for row in csv.DictReader(f)
        ]


def comparison_from_rows(
    rows: Sequence[RunRow],
    *,
    group: str,
    direction: str,
    metric: str,
    budget: int,
    spec: dict[str, Any],
    pruners: dict[str, str],
) -> Comparison:
    """The Comparison the statistics and report take, from runs.csv's rows.

    Each study's trials stay in finishing order (what compute to target counts along);
    a trial's compute is the step of the cumulative column.
    """
    studies: dict[tuple[str, int], list[RunRow]] = {}
    for r in rows:
        studies.setdefault((r.arm, r.seed), []).append(r)
    runs = []
    for index, ((arm, seed), study) in enumerate(studies.items()):
        records, before = [], 0.0
        for r in study:
            compute = r.compute_seconds - before
            before = r.compute_seconds
            value = r.value if r.state == "COMPLETE" else None
            records.append(
                TrialRecord(r.trial, r.state, value, compute, {}, {TRAIN_SECONDS_ATTR: compute})
            )
        sampler = arm.partition("+")[0]
        runs.append(
            StudyRun(f"{group}-{arm}-s{seed}", index, arm, sampler, pruners.get(arm), seed, records)
        )
    return Comparison(group, direction, metric, budget, spec, runs)


def _number(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _float(text: str) -> float | None:
    return float(text) if text != "" else None
