"""`hpo compare FILE --replay TABLE.db`: every arm x seed replayed, then the live report.

The studies are derived from the study file exactly as a live compare derives them
(hpo.compare.run), each replayed against the recorded table on a simulated clock
(hpo.compare.simulator); the rows go to DIR/runs.csv, and the report (the same statistics,
table and figures as a live compare) is built from that file. Nothing is trained and no
storage is opened: each study runs on an in-memory storage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpo.compare.analyze import analyze
from hpo.compare.report import BuiltReport, print_report, report_folder, write_report
from hpo.compare.run import DEFAULT_ARMS, ComparisonPlan, plan_comparison
from hpo.compare.runs import (
    RUNS_FILE,
    Finished,
    RunRow,
    comparison_from_rows,
    read_runs,
    study_rows,
    write_runs,
)
from hpo.compare.simulator import replay_study
from hpo.compare.table import Lookup, Table, read_table
from hpo.config.spec import StudySpec
from hpo.errors import HpoError

REPLAY_SUFFIX = "-replay"  # the group's name: the study name, told apart from a live compare


def replay_rows(
    table: Table,
    plan: ComparisonPlan,
    spec: StudySpec,
    *,
    workers: int,
) -> list[RunRow]:
    """Replay every (arm, seed) of `plan`; rows grouped by arm (as given), then seed."""
    lookup = Lookup(table, spec.space)
    by_study: dict[tuple[str, int], list[RunRow]] = {}
    for arm in plan.arms:
        trials = replay_study(table, lookup, arm.spec, trials=plan.trials, workers=workers)
        finished = [Finished(t.number, t.state, t.value, t.compute, t.finish) for t in trials]
        by_study[(arm.label, arm.seed)] = study_rows(arm.label, arm.seed, finished, spec.direction)
    order = {label: i for i, label in enumerate(plan.labels)}
    keys = sorted(by_study, key=lambda k: (order[k[0]], k[1]))
    return [row for key in keys for row in by_study[key]]


def replay_file(
    spec: StudySpec,
    table_path: str | Path,
    *,
    arms: str | None,
    option: str = "--arms",
    seeds: int,
    trials: int | None,
    workers: int,
    out: str | Path | None,
) -> BuiltReport:
    """Replay the comparison of `spec` against the table; write runs.csv and the report."""
    plan = plan_comparison(
        spec, DEFAULT_ARMS if arms is None else arms, seeds=seeds, trials=trials, option=option
    )
    if workers < 1:
        raise HpoError(f"--workers must be >= 1, got {workers}")
    table = read_table(table_path)
    _check_epochs(table, spec, table_path)
    rows = replay_rows(table, plan, spec, workers=workers)
    group = spec.name + REPLAY_SUFFIX
    folder = report_folder(group, out)
    runs = write_runs(folder, rows)
    comparison = comparison_from_rows(
        read_runs(runs),  # the report is what the file says
        group=group,
        direction=spec.direction,
        metric=spec.metric,
        budget=plan.trials,
        spec=_snapshot(spec, table_path, workers),
        pruners={a.label: a.pruner for a in plan.arms},
    )
    built = write_report(analyze(comparison), folder)
    print_report(built)
    print(f"wrote {folder / RUNS_FILE}")
    return built


def _check_epochs(table: Table, spec: StudySpec, path: str | Path) -> None:
    recorded = table.meta.get("epochs")
    if recorded is not None and recorded != str(spec.train.epochs):
        raise HpoError(
            f"{path} was recorded with {recorded} epochs, the study file trains "
            f"{spec.train.epochs}; replay it with the study file it was recorded from"
        )


def _snapshot(spec: StudySpec, table_path: str | Path, workers: int) -> dict[str, Any]:
    snapshot = spec.to_dict()
    snapshot["replay"] = {"table": str(table_path), "workers": workers}
    return snapshot
