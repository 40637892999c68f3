"""What every report of hpo shares (`hpo compare`, `hpo claims`): where the files go, one
palette, the PNG resolution, Markdown tables, plotly.js beside the HTML page, the
terminal lines about the files, and replacing a study's report artifacts by file name.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound
from plotly.offline import get_plotlyjs

from hpo.report.console import console, visible
from hpo.storage._optuna import study_id, study_storage

REPORTS_DIR = Path("reports")  # default parent of report folders, in the working directory
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]
PNG_DPI = 110  # readable in a README, small enough to commit
ARTIFACT_ATTR_PREFIX = "artifacts:"  # where optuna.artifacts records study artifacts


def palette_color(i: int) -> str:
    """The i-th colour of the palette (it repeats past its end)."""
    return COLORS[i % len(COLORS)]


def rgba(hex_color: str, alpha: float) -> str:
    """'#rrggbb' and an opacity as a CSS rgba() colour (plotly's band fills)."""
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def plotly_script(page: Path, *, inline_js: bool = False) -> str:
    """The <script> tag that loads plotly.js for the HTML page `page`.

    plotly.js (~4.8 MB) goes into its own file next to the page instead of a CDN link, so
    the report opens offline, and instead of inline, so several reports (and git diffs of
    a report) share one copy; it is written once. `inline_js` embeds it instead: for a
    single file that must work alone, such as the dashboard artifact.
    """
    if inline_js:
        return f"<script>{get_plotlyjs()}</script>"
    js = page.parent / "plotly.min.js"
    if not js.exists():
        js.write_text(get_plotlyjs(), encoding="utf-8")
    return '<script src="plotly.min.js"></script>'


def print_files(html: Path, summary: Path, pngs: list[Path]) -> None:
    """The line that says where a report's files are."""
    console.print(
        visible(f"report: {html}, {summary}, {len(pngs)} PNG(s) in {html.parent}"),
        markup=False,
    )


def print_published(files: list[Path]) -> None:
    console.print(
        f"notes, plots and {len(files)} file(s) published; see `hpo dashboard`",
        markup=False,
    )


def replace_study_artifacts(
    study: optuna.Study, store: FileSystemArtifactStore, files: list[Path]
) -> list[str]:
    """Upload `files` to the study, first removing earlier artifacts of the same names."""
    names = {f.name for f in files}
    storage = study_storage(study)
    for key, value in storage.get_study_system_attrs(study_id(study)).items():
        if not key.startswith(ARTIFACT_ATTR_PREFIX) or value is None:
            continue
        meta = json.loads(value) if isinstance(value, str) else value
        if meta and meta.get("filename") in names:
            with contextlib.suppress(ArtifactNotFound):  # already gone from the folder
                store.remove(meta["artifact_id"])
            # What the dashboard itself writes when an artifact is deleted.
            storage.set_study_system_attr(study_id(study), key, json.dumps(None))
    ids = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for path in files:
            ids.append(
                upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=study)
            )
    return ids
