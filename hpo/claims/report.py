"""Rendering of the claims: progress lines, verdicts in the terminal, Markdown, HTML, files.

Everything here takes ready-made results (hpo.claims.results) and only prints or writes.
Each claim's section is its statement, the verdict computed from the data, one line per
check with the numbers it rests on, a table and a figure.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from hpo.claims.experiments import Claim
from hpo.claims.figures import plotly_figures, write_pngs
from hpo.claims.results import Check, ClaimResult
from hpo.claims.run import RunDone
from hpo.report.console import console, literal, visible
from hpo.report.shared import REPORTS_DIR, md_table, plotly_script, print_files

MARKS = {True: "agrees", False: "does not agree", None: "cannot tell"}


def report_folder(size: str, out: str | Path | None = None) -> Path:
    """`out` if given, else reports/claims (reports/claims-quick for the quick size)."""
    if out is not None:
        return Path(out)
    return REPORTS_DIR / ("claims" if size == "full" else f"claims-{size}")


# ---------------------------------------------------------------- while it runs


def print_plan(claims: list[Claim], *, seeds: int, size: str, storage_shown: str) -> None:
    runs = sum(len(c.runs(seeds)) for c in claims)
    console.print(
        visible(
            f"claims ({size}) in {storage_shown}: {len(claims)} claims, {runs} runs "
            f"({seeds} seed(s) each); finished runs are skipped"
        ),
        markup=False,
        soft_wrap=True,
    )


def print_run(done: RunDone) -> None:
    value = "diverged" if done.value is None else f"val acc {done.value:.4f}"
    console.print(
        visible(
            f"{done.claim} {done.number}/{done.total}: {done.key}: {value} ({done.seconds:.1f} s)"
        ),
        markup=False,
        soft_wrap=True,
    )


# ---------------------------------------------------------------- text pieces


def cell(value: Any) -> str:
    """A table cell: 4 significant digits, '-' for none, 'never' for inf, yes/no."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return "never" if math.isinf(value) else f"{value:.4g}"
    return str(value)


def check_line(check: Check) -> str:
    return f"{MARKS[check.agrees]}: {check.text}, because {check.because}."


def headline(result: ClaimResult) -> str:
    return f"{result.title}: {result.verdict}"


def claim_markdown(result: ClaimResult, png: str | None = None, *, level: int = 2) -> str:
    """One claim's section: statement, verdict, checks, table, figure."""
    runs = f"{result.runs} runs in study `{result.study_name}`"
    if result.diverged:
        runs += f", {result.diverged} of them diverged"
    lines = [
        f"{'#' * level} {result.title}",
        "",
        f"> {result.statement}",
        "",
        f"**Verdict: {result.verdict}** ({runs}).",
        "",
        *(f"- {check_line(c)}" for c in result.checks),
        "",
        md_table(result.headers, [[cell(v) for v in row] for row in result.rows]),
        "",
    ]
    if png is not None:
        lines += [f"![{result.name}]({png})", ""]
    return "\n".join(lines)


THRESHOLDS_NOTE = (
    "How the verdicts are computed: every number comes from the runs stored in the "
    "database; seeds are summarised by their median (plots: median line, min-max band). "
    "A claim *agrees* when every check does, *does not agree* when none does, and "
    "*partly agrees* otherwise. The thresholds are constants in `hpo/claims/thresholds.py`, "
    "stated in each check."
)


def markdown_report(results: list[ClaimResult], pngs: dict[str, str]) -> str:
    lines = [
        "# The lectures' claims, reproduced",
        "",
        THRESHOLDS_NOTE,
        "",
        "| claim | verdict |",
        "|---|---|",
        *(f"| {r.title} | {r.verdict} |" for r in results),
        "",
    ]
    for result in results:
        lines.append(claim_markdown(result, pngs.get(result.name)))
    lines += ["Interactive version: `report.html` (needs `plotly.min.js` beside it).", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- files


@dataclass(frozen=True)
class BuiltReport:
    results: list[ClaimResult]
    figures: dict[str, go.Figure]
    markdown: str
    html: Path
    pngs: list[Path]
    summary: Path  # the Markdown file

    @property
    def files(self) -> list[Path]:
        return [self.html, *self.pngs, self.summary]


def write_report(results: list[ClaimResult], folder: Path) -> BuiltReport:
    figures = plotly_figures(results)
    folder.mkdir(parents=True, exist_ok=True)
    pngs = write_pngs(results, folder)
    markdown = markdown_report(results, {p.stem: p.name for p in pngs})
    summary = folder / "summary.md"
    summary.write_text(markdown, encoding="utf-8")
    page = write_html(results, figures, folder / "report.html")
    return BuiltReport(results, figures, markdown, page, pngs, summary)


def write_html(
    results: list[ClaimResult],
    figures: dict[str, go.Figure],
    path: Path,
    *,
    inline_js: bool = False,
) -> Path:
    """One page: each claim's verdict, checks, table and figures; plotly.js beside it
    (or inlined: see hpo.report.shared.plotly_script)."""
    script = plotly_script(path, inline_js=inline_js)
    sections = []
    for r in results:
        checks = "".join(f"<li>{html.escape(check_line(c))}</li>" for c in r.checks)
        head = "".join(f"<th>{html.escape(h)}</th>" for h in r.headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell(v))}</td>" for v in row) + "</tr>"
            for row in r.rows
        )
        divs = "\n".join(
            fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{key}")
            for key, fig in figures.items()
            if key == r.name or key.startswith(f"{r.name}-")
        )
        sections.append(
            f"<h2>{html.escape(r.title)}</h2>\n<blockquote>{html.escape(r.statement)}"
            f"</blockquote>\n<p><b>Verdict: {html.escape(r.verdict)}</b> ({r.runs} runs in "
            f"study {html.escape(r.study_name)})</p>\n<ul>{checks}</ul>\n"
            f"<table><tr>{head}</tr>{body}</table>\n{divs}"
        )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>hpo: the lectures' claims</title>
{script}
<style>body{{font-family:sans-serif;max-width:1200px;margin:auto}}
table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style>
</head><body>
<h1>The lectures' claims, reproduced</h1>
<p>{html.escape(THRESHOLDS_NOTE)}</p>
{"".join(sections)}
</body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path


def print_report(built: BuiltReport) -> None:
    """Each claim's verdict and checks, then where the files are."""
    for r in built.results:
        console.print(
            f"[bold]{literal(r.title)}[/]: {literal(r.verdict)}", soft_wrap=True, highlight=False
        )
        for c in r.checks:
            console.print(
                f"  {visible(check_line(c))}", markup=False, soft_wrap=True, highlight=False
            )
    print_files(built.html, built.summary, built.pngs)
