"""Publishing the claims to optuna-dashboard: notes, plotly figures and report files.

Each claim's study gets a note with its statement, verdict, checks and table, and its
figures as plotly graph objects; the first claim's study (the *lead*) also carries the
report files as artifacts. Re-publishing replaces all of it instead of piling up.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import optuna
import optuna_dashboard
from optuna.artifacts import FileSystemArtifactStore

from hpo.claims.report import BuiltReport, claim_markdown, write_html
from hpo.claims.results import ClaimResult
from hpo.report.shared import replace_study_artifacts

FIGURE_PREFIX = "hpo-claims-"  # graph object ids: stable, so re-publishing overwrites


def dashboard_path(result: ClaimResult) -> str:
    """The dashboard's page of a claim's study (relative to the dashboard's root)."""
    return f"/dashboard/studies/{result.study_id}"


def claim_note(built: BuiltReport, result: ClaimResult) -> str:
    """A claim's section of the report, and where the other claims and the files are."""
    lead = built.results[0]
    others = "\n".join(
        f"- [{r.title}]({dashboard_path(r)}): {r.verdict}"
        + (" (this study)" if r is result else "")
        for r in built.results
    )
    return (
        claim_markdown(result)
        + "\nThe figures are below (graphs of this study). The whole report (HTML, PNGs, "
        f"Markdown) is among the artifacts of [{lead.study_name}]({dashboard_path(lead)}).\n\n"
        f"The lectures' claims:\n\n{others}\n"
    )


def publish_claims(
    storage: optuna.storages.BaseStorage, built: BuiltReport, artifact_dir: str | Path
) -> ClaimResult:
    """Write notes, figures and artifacts to the claims' studies; returns the lead."""
    for result in built.results:
        study = optuna.load_study(study_name=result.study_name, storage=storage)
        optuna_dashboard.save_note(study, claim_note(built, result))
        for key, figure in built.figures.items():
            if key == result.name or key.startswith(f"{result.name}-"):
                optuna_dashboard.save_plotly_graph_object(
                    study, figure, graph_object_id=FIGURE_PREFIX + key
                )
    lead = built.results[0]
    study = optuna.load_study(study_name=lead.study_name, storage=storage)
    Path(artifact_dir).mkdir(parents=True, exist_ok=True)
    store = FileSystemArtifactStore(str(artifact_dir))
    with tempfile.TemporaryDirectory() as tmp:
        # Served alone, without plotly.min.js beside it: embed plotly.js.
        page = write_html(built.results, built.figures, Path(tmp) / "report.html", inline_js=True)
        files = [page if f == built.html else f for f in built.files]
        replace_study_artifacts(study, store, files)
    return lead
