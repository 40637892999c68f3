"""Publishing a comparison to optuna-dashboard: notes, plotly figures and report files.

Every study of a comparison gets a note saying what it is (arm, seed, group) with links
to its siblings; the *lead* study (the baseline arm's first seed) also carries
the summary table, the comparison figures (rendered by the dashboard from the storage)
and the report files as artifacts. Re-publishing replaces all of it instead of piling up.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import optuna
import optuna_dashboard
from optuna.artifacts import FileSystemArtifactStore

from hpo.compare.load import Comparison, StudyRun
from hpo.compare.pareto import front_numbers
from hpo.compare.report import HEADERS, BuiltReport, headline, summary_rows, write_html
from hpo.report.shared import md_table, replace_study_artifacts

FIGURE_PREFIX = "hpo-compare-"  # graph object ids: stable, so re-publishing overwrites


def dashboard_path(run: StudyRun) -> str:
    """The dashboard's page of a study (a link relative to the dashboard's root)."""
    return f"/dashboard/studies/{run.study_id}"


def study_note(comparison: Comparison, run: StudyRun, lead: StudyRun) -> str:
    """Markdown note of one study: what it is and where its siblings are."""
    siblings = "\n".join(
        f"- [{r.name}]({dashboard_path(r)}) ({r.arm}, seed {r.seed})"
        + (" (this study)" if r.name == run.name else "")
        for r in comparison.runs
    )
    pruner = run.pruner or comparison.spec.get("pruner", {}).get("name", "-")
    return (
        f"## {run.arm} search, seed {run.seed}\n\n"
        f"Sampler {run.sampler}, pruner {pruner}. One arm of the comparison "
        f"**{comparison.group}** ({', '.join(comparison.arms)} x "
        f"{len(comparison.runs_of(run.arm))} seeds x {comparison.budget} trials; everything "
        "but sampler, pruner and seed identical). "
        f"Summary table, comparison plots and report files: "
        f"[{lead.name}]({dashboard_path(lead)}).\n\n"
        f"Studies of this comparison:\n\n{siblings}\n" + _front_line(comparison, run)
    )


def _front_line(comparison: Comparison, run: StudyRun) -> str:
    """A multi-objective study's note names the trials on its feasible Pareto front."""
    if not comparison.reference:
        return ""
    metrics = tuple(comparison.spec.get("metrics") or ())
    numbers = front_numbers(run, metrics)
    listed = ", ".join(map(str, numbers)) or "none yet"
    return (
        f"\nOn this study's feasible Pareto front ({' vs '.join(metrics)}): trials {listed}. "
        f"Hypervolume reference point: {comparison.reference}.\n"
    )


def lead_note(built: BuiltReport, lead: StudyRun) -> str:
    stats = built.stats
    c = stats.comparison
    return (
        f"## Comparison of search strategies {c.group}\n\n"
        f"{headline(stats)}\n\n"
        f"{md_table(HEADERS, summary_rows(stats))}\n\n"
        "The comparison plots are below (graphs of this study); the HTML report and PNGs are "
        "among the study's artifacts.\n\n" + study_note(c, lead, lead)
    )


def publish_comparison(
    storage: optuna.storages.BaseStorage, built: BuiltReport, artifact_dir: str | Path
) -> StudyRun:
    """Write notes, figures and artifacts to the comparison's studies; returns the lead."""
    comparison = built.stats.comparison
    lead = comparison.runs_of(built.stats.baseline)[0]
    for run in comparison.runs:
        study = optuna.load_study(study_name=run.name, storage=storage)
        note = lead_note(built, lead) if run is lead else study_note(comparison, run, lead)
        optuna_dashboard.save_note(study, note)
    study = optuna.load_study(study_name=lead.name, storage=storage)
    for key, figure in built.figures.items():
        optuna_dashboard.save_plotly_graph_object(
            study, figure, graph_object_id=FIGURE_PREFIX + key
        )
    Path(artifact_dir).mkdir(parents=True, exist_ok=True)
    store = FileSystemArtifactStore(str(artifact_dir))
    with tempfile.TemporaryDirectory() as tmp:
        # The artifact is served alone, without plotly.min.js beside it: embed plotly.js.
        html = write_html(built.stats, built.figures, Path(tmp) / "report.html", inline_js=True)
        files = [html if f == built.html else f for f in built.files]
        replace_study_artifacts(study, store, files)
    return lead
