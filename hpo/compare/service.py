"""What `hpo compare` and `hpo report` do, one call each: run, read back, render, publish.

The commands only parse options; the steps and their order (checks before the storage is
touched, the report after the studies) live here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hpo.compare.analyze import analyze
from hpo.compare.load import importances_by_arm, load_comparison
from hpo.compare.publish import publish_comparison
from hpo.compare.report import (
    BuiltReport,
    ProgressPrinter,
    print_plan,
    print_report,
    report_folder,
    write_report,
)
from hpo.compare.runs import comparison_rows, write_runs
from hpo.errors import HpoError
from hpo.report.shared import print_published
from hpo.runtime.artifacts import check_artifacts
from hpo.storage.open import connect
from hpo.storage.urls import mask_url

if TYPE_CHECKING:
    import optuna

    from hpo.config.settings import Settings


def compare_file(
    settings: Settings,
    file: str,
    *,
    arms: str | None = None,
    samplers: str | None = None,
    seeds: int = 10,
    trials: int | None = None,
    workers: int = 1,
    gpus: str = "none",
    data_dir: str | None = None,
    out: str | Path | None = None,
    report: bool = True,
    replay: str | Path | None = None,
) -> BuiltReport | None:
    """Run one study of `file` per (arm, seed), then build and publish the report.

    `arms` is comma-separated, as on the command line (`random,tpe+hyperband`; None:
    random,tpe); an arm without `+PRUNER` keeps the study file's pruner. `samplers` is the
    older name of `arms` (`--samplers`), accepted when `arms` is not given.
    Each study gets `workers` CPU workers, or one per GPU of `gpus`. Resumable: run it
    again and only what is missing runs. The file, the options and the data set are
    checked before the storage is opened. Returns the report, or None with `report=False`.
    With `replay` (a table written by `hpo record`) nothing trains and no storage is
    opened: every study is replayed on a simulated clock (hpo.compare.replay).
    """
    # Imported here: they load torch (through the spec's model names), which `hpo report`
    # never needs.
    from hpo.compare.run import DEFAULT_ARMS, plan_comparison, run_comparison
    from hpo.config.spec import load_spec
    from hpo.runtime.devices import parse_gpus, visible_gpus
    from hpo.runtime.launch import check_exit_codes, plan_workers
    from hpo.runtime.worker import load_study_data
    from hpo.study.samplers import check_options

    if arms is not None and samplers is not None:
        raise HpoError("give --arms or its older name --samplers, not both")
    option, text = ("--samplers", samplers) if samplers is not None else ("--arms", arms)
    spec = check_options(load_spec(file), source=file)
    if replay is not None:
        from hpo.compare.replay import replay_file

        if gpus != "none" or data_dir is not None or not report:
            raise HpoError("--replay trains nothing: leave out --gpus, --data-dir, --no-report")
        return replay_file(
            spec,
            replay,
            arms=text,
            option=option,
            seeds=seeds,
            trials=trials,
            workers=workers,
            out=out,
        )
    plan = plan_comparison(
        spec, DEFAULT_ARMS if text is None else text, seeds=seeds, trials=trials, option=option
    )
    if workers < 1:
        raise HpoError(f"--workers must be >= 1, got {workers}")
    plans = plan_workers(workers, parse_gpus(gpus, visible_gpus()))
    load_study_data(spec, data_dir)  # fails before the storage is touched
    check_artifacts(settings.artifacts)  # the workers' checkpoints, the published report
    storage = connect(settings)
    print_plan(plan, mask_url(settings.storage_url), len(plans))
    codes = run_comparison(
        storage,
        settings.storage_url,
        plan.arms,
        plans,
        trials=plan.trials,
        data_dir=data_dir,
        on_progress=ProgressPrinter(),
        extra_env=settings.worker_env(),
    )
    check_exit_codes(codes)
    if not report:
        return None
    return report_group(settings, plan.group, out=out, storage=storage)


def report_group(
    settings: Settings,
    group: str,
    *,
    out: str | Path | None = None,
    publish: bool = True,
    storage: optuna.storages.RDBStorage | None = None,
) -> BuiltReport:
    """(Re)build the report of comparison `group`: print the table, write the files into
    `out` (default: a safe folder in reports/), and publish it to optuna-dashboard."""
    if publish:
        check_artifacts(settings.artifacts)
    storage = storage if storage is not None else connect(settings)
    built = build_report(storage, group, report_folder(group, out))
    print_report(built)
    if publish:
        publish_comparison(storage, built, settings.artifacts)
        print_published(built.files)
    return built


def build_report(storage: optuna.storages.RDBStorage, group: str, folder: Path) -> BuiltReport:
    """Read comparison `group`, compute its statistics and write the report files (silent)."""
    comparison = load_comparison(storage, group)
    stats = analyze(comparison, importances_by_arm(storage, comparison))
    built = write_report(stats, folder)
    write_runs(folder, comparison_rows(comparison))  # every compare leaves its runs.csv
    return built
