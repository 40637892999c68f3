"""What `hpo claims` does, as one call: check the options, run, read back, render, publish.

The command only parses options; the steps and their order (checks before the storage is
touched, the report after the runs) live here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hpo.errors import HpoError
from hpo.runtime.artifacts import check_artifacts
from hpo.storage.open import connect
from hpo.storage.urls import mask_url

if TYPE_CHECKING:
    import optuna

    from hpo.claims.report import BuiltReport
    from hpo.config.settings import Settings


def claims_command(
    settings: Settings,
    *,
    seeds: int = 3,
    size: str = "full",
    out: str | Path | None = None,
    report: bool = True,
    report_only: bool = False,
    publish: bool = True,
) -> BuiltReport | None:
    """Run every claim's runs that the storage does not hold yet, then build the report.

    Resumable: run it again and only missing runs train (more `seeds` add runs). With
    `report_only` nothing trains; the report is rebuilt from what is stored. Returns the
    report, or None with `report=False`.
    """
    from hpo.claims.experiments import check_options, claims

    check_options(size, seeds)
    if report_only and not report:
        raise HpoError("give --report-only or --no-report, not both")
    if report and publish:  # the report files go to the artifact folder too
        check_artifacts(settings.artifacts)
    storage = connect(settings)
    if not report_only:
        # Imported here: training loads torch and the data stack, which a rebuild never needs.
        from hpo.claims.report import print_plan, print_run
        from hpo.claims.run import run_claims

        plan = claims(size)
        print_plan(plan, seeds=seeds, size=size, storage_shown=mask_url(settings.storage_url))
        run_claims(storage, plan, size=size, seeds=seeds, on_run=print_run)
    if not report:
        return None
    return build_and_publish(settings, storage, size=size, out=out, publish=publish)


def build_and_publish(
    settings: Settings,
    storage: optuna.storages.BaseStorage,
    *,
    size: str,
    out: str | Path | None,
    publish: bool,
) -> BuiltReport:
    """Read the claims of `size` back, judge them, write the files, print, publish."""
    from hpo.claims.publish import publish_claims
    from hpo.claims.report import print_report, report_folder
    from hpo.report.shared import print_published

    built = build_report(storage, size, report_folder(size, out))
    print_report(built)
    if publish:
        publish_claims(storage, built, settings.artifacts)
        print_published(built.files)
    return built


def build_report(storage: optuna.storages.BaseStorage, size: str, folder: Path) -> BuiltReport:
    """Read, analyze and write the report files (silent)."""
    from hpo.claims.analyze import analyze
    from hpo.claims.load import load_claims
    from hpo.claims.report import write_report

    return write_report(analyze(load_claims(storage, size)), folder)
