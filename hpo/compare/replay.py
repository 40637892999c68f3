"""`hpo compare FILE --replay TABLE.db`: every arm x seed replayed, then the live report.

The studies are derived from the study file exactly as a live compare derives them
(hpo.compare.run), each replayed against the recorded table on a simulated clock
(hpo.compare.simulator); the rows go to DIR/runs.csv, and the report (the same statistics,
table and figures as a live compare) is built from that file. Nothing is trained and no
storage is opened: each study runs on an in-memory storage.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna

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
from hpo.config.space import FixedParam
from hpo.config.spec import StudySpec
from hpo.errors import HpoError
from hpo.study.space import to_distribution

REPLAY_SUFFIX = "-replay"  # the group's name: the study name, told apart from a live compare
# fANOVA's forest grows with the trials it is given: a few thousand make it stable (the
# live report pools a few hundred), 100 seeds x 200 trials would take minutes.
IMPORTANCE_TRIALS = 2000


def replay_rows(
    table: Table,
    plan: ComparisonPlan,
    spec: StudySpec,
    *,
    workers: int,
    completed: dict[str, list[tuple[dict[str, Any], float]]] | None = None,
) -> list[RunRow]:
    """Replay every (arm, seed) of `plan`; rows grouped by arm (as given), then seed.

    `completed`, when given, collects each arm's COMPLETE trials as (params, value), up to
    IMPORTANCE_TRIALS per arm (for the importances).
    """
    lookup = Lookup(table, spec.space)
    by_study: dict[tuple[str, int], list[RunRow]] = {}
    for arm in plan.arms:
        trials = replay_study(table, lookup, arm.spec, trials=plan.trials, workers=workers)
        if completed is not None:
            pool = completed.setdefault(arm.label, [])
            pool += [
                (t.params, t.value) for t in trials if t.state == "COMPLETE" and t.value is not None
            ]
            del pool[IMPORTANCE_TRIALS:]
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
    completed: dict[str, list[tuple[dict[str, Any], float]]] = {}
    rows = replay_rows(table, plan, spec, workers=workers, completed=completed)
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
    importances = {arm: importances_of(pool, spec) for arm, pool in completed.items()}
    built = write_report(analyze(comparison, importances), folder)
    print_report(built)
    print(f"wrote {folder / RUNS_FILE}")
    return built


def importances_of(
    completed: list[tuple[dict[str, Any], float]], spec: StudySpec
) -> dict[str, float]:
    """Optuna's fANOVA importances (seed 0) of one arm's pooled completed trials; empty
    when they cannot be computed (fewer than 2, or every value the same)."""
    if len(completed) < 2:
        return {}
    distributions = {
        k: to_distribution(p) for k, p in spec.space.items() if not isinstance(p, FixedParam)
    }
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created"
    try:
        study = optuna.create_study(direction=spec.direction)
    finally:
        optuna.logging.set_verbosity(verbosity)
    study.add_trials(
        [
            optuna.trial.create_trial(
                params={k: params[k] for k in distributions},
                distributions=distributions,
                value=value,
            )
            for params, value in completed
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
            return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
        except (RuntimeError, ValueError):  # e.g. every trial has the same value
            return {}


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
