"""Rendering of sampler comparisons: progress lines, terminal table, Markdown, HTML, files.

Everything here takes ready-made statistics (hpo.compare.analyze) and only prints or
writes; reading the storage and computing happen before.
"""

from __future__ import annotations

import html
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from rich.markup import escape
from rich.table import Table

from hpo.compare.analyze import ComparisonStats, diagnostics_by
from hpo.compare.figures import plotly_figures, write_pngs
from hpo.console import console
from hpo.paths import safe_folder_name

if TYPE_CHECKING:
    from hpo.compare.run import Arm, ComparisonPlan, ComparisonProgress

REPORTS_DIR = Path("reports")  # default parent of report folders, in the working directory


def report_folder(group: str, out: str | Path | None = None) -> Path:
    """`out` if given, else a folder in reports/ whose name is made safe from the group's.

    A group name is free text (the study file's study name): used as a path it could
    point anywhere (`/tmp/x`, `../../x`), so it only ever contributes a safe name.
    """
    return Path(out) if out is not None else REPORTS_DIR / safe_folder_name(group)


# ---------------------------------------------------------------- while it runs


def print_plan(plan: ComparisonPlan, storage_shown: str, workers: int) -> None:
    """The line before a comparison starts: what runs where."""
    console.print(
        f"comparison {plan.group} in {storage_shown}: {', '.join(plan.samplers)} x "
        f"{plan.seeds} seed(s) x {plan.trials} trials, {workers} worker(s) per study",
        markup=False,
        soft_wrap=True,
    )


class ProgressPrinter:
    """One line per change: per sampler, trials done of its budget and the best so far."""

    def __init__(self) -> None:
        self.last: tuple[object, ...] | None = None

    def __call__(self, progress: ComparisonProgress, arm: Arm) -> None:
        rows = progress.rows()
        key = tuple(rows)
        if key == self.last:
            return
        self.last = key
        parts = [
            f"[bold]{sampler}[/] {done}/{budget} best {'-' if best is None else f'{best:.4f}'}"
            for sampler, done, budget, best in rows
        ]
        # The study name is free text: escaped, so a '[' in it is not read as markup.
        console.print(f"{'  '.join(parts)}  (running {escape(arm.spec.name)})", soft_wrap=True)
        sys.stdout.flush()


# ---------------------------------------------------------------- the report files


@dataclass(frozen=True)
class BuiltReport:
    """A written report: the numbers, the figures and the files."""

    stats: ComparisonStats
    figures: dict[str, go.Figure]
    markdown: str
    html: Path
    pngs: list[Path]
    summary: Path  # the Markdown file

    @property
    def files(self) -> list[Path]:
        """HTML, PNGs, Markdown (plotly.min.js not counted: it is a library)."""
        return [self.html, *self.pngs, self.summary]


def write_report(stats: ComparisonStats, folder: Path) -> BuiltReport:
    """Render the figures and write the HTML page, the PNGs and the Markdown to `folder`."""
    figures = plotly_figures(stats)
    folder.mkdir(parents=True, exist_ok=True)
    pngs = write_pngs(stats, folder)
    markdown = markdown_summary(stats, [p.name for p in pngs])
    md_path = folder / "summary.md"
    md_path.write_text(markdown, encoding="utf-8")
    html_path = write_html(stats, figures, folder / "report.html")
    return BuiltReport(stats, figures, markdown, html_path, pngs, md_path)


def print_report(built: BuiltReport) -> None:
    """The table, then where the files are."""
    print_comparison(built.stats)
    console.print(
        f"report: {built.html}, {built.summary}, {len(built.pngs)} PNG(s) in {built.html.parent}",
        markup=False,
    )


def print_published(built: BuiltReport) -> None:
    console.print(
        f"notes, plots and {len(built.files)} file(s) published; see `hpo dashboard`",
        markup=False,
    )


def _f(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def summary_rows(stats: ComparisonStats) -> list[list[str]]:
    """The comparison table as text cells (shared by terminal, Markdown and HTML)."""
    versus = {v.sampler: v for v in stats.versus}
    rows = []
    for s in stats.samplers:
        v = versus.get(s.sampler)
        rows.append(
            [
                s.sampler,
                str(s.studies),
                str(s.trials),
                f"{_f(s.final.estimate)} [{_f(s.final.low)}, {_f(s.final.high)}]",
                f"{_f(s.q25)} - {_f(s.q75)}",
                "-" if s.target.trials is None else str(s.target.trials),
                _f(s.target.seconds, 1),
                f"{s.target.hit}/{s.target.studies}",
                "baseline" if v is None else _f(v.test.p_value, 3),
                "-" if v is None else _f(v.test.p_better, 2),
                "baseline" if v is None else f"{_x(v.speedup_trials)} / {_x(v.speedup_seconds)}",
            ]
        )
    return rows


HEADERS = [
    "sampler",
    "seeds",
    "trials",
    "median final best [95% CI]",
    "IQR",
    "trials to target",
    "s to target",
    "seeds at target",
    "Mann-Whitney p",
    "P(beats base)",
    "speedup trials / s",
]


def print_comparison(stats: ComparisonStats) -> None:
    c = stats.comparison
    table = Table(
        title=f"Comparison {escape(c.group)}: {c.metric} ({c.direction}), {c.budget} trials per "
        f"study, target {_f(stats.target)} = {stats.baseline}'s median final best",
        title_justify="left",
    )
    # The IQR stays in the Markdown and HTML: the terminal table must fit 140 columns.
    keep = [i for i, h in enumerate(HEADERS) if h != "IQR"]
    for i in keep:
        table.add_column(HEADERS[i], justify="left" if i == 0 else "right")
    for row in summary_rows(stats):
        table.add_row(*(row[i] for i in keep))
    console.print(table)
    for s in stats.samplers:
        top = ", ".join(f"{k} {v:.2f}" for k, v in list(s.importances.items())[:4])
        if top:
            console.print(f"[bold]{s.sampler}[/] most important: {top}")


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def headline(stats: ComparisonStats) -> str:
    """One paragraph: who wins, by how much, how sure."""
    parts = []
    base = stats.of(stats.baseline)
    for v in stats.versus:
        s = stats.of(v.sampler)
        parts.append(
            f"{v.sampler} reaches a median final best of {_f(s.final.estimate)} "
            f"(95% CI {_f(s.final.low)}-{_f(s.final.high)}) against {stats.baseline}'s "
            f"{_f(base.final.estimate)} ({_f(base.final.low)}-{_f(base.final.high)}); "
            f"Mann-Whitney U = {_f(v.test.u, 1)}, two-sided p = {_f(v.test.p_value, 3)}; "
            f"a {v.sampler} study beats a {stats.baseline} study with probability "
            f"{_f(v.test.p_better, 2)}. The typical {v.sampler} study reaches the target "
            f"({_f(stats.target)}) after {s.target.trials or 'never (within budget)'} trials "
            f"vs {base.target.trials or '-'} for {stats.baseline}: a speedup of "
            f"{_x(v.speedup_trials)} in trials and {_x(v.speedup_seconds)} in trial-seconds."
        )
    return " ".join(parts)


def markdown_summary(stats: ComparisonStats, pngs: list[str]) -> str:
    c = stats.comparison
    space = ", ".join(sorted(c.spec.get("space", {})))
    data, train, pruner = (c.spec.get(k, {}) for k in ("data", "train", "pruner"))
    lines = [
        f"# Sampler comparison `{c.group}`",
        "",
        f"{', '.join(c.samplers)} x {max(s.studies for s in stats.samplers)} seeds x "
        f"{c.budget} trials; model `{c.spec.get('model')}` on `{data.get('name')}`,"
        f" {train.get('epochs')} epochs, pruner "
        f"`{pruner.get('name')}`, metric `{c.metric}` ({c.direction}); "
        f"search space: {space}.",
        "",
        headline(stats),
        "",
        md_table(HEADERS, summary_rows(stats)),
        "",
        f"Target = {stats.baseline}'s median final best ({_f(stats.target)}). *Trials to target*: "
        "finished trials (trial-number order) until the median best-so-far curve reaches it. "
        "*Seconds*: wall time of those trials (start to finish of each trial, summed, i.e. "
        "worker CPU/GPU-seconds including pruned and failed trials; not the `train_seconds` "
        "attr, which only completed trials have). CI: percentile bootstrap of the median, "
        "10,000 resamples, seed 0.",
        "",
        "## Which hyperparameters mattered (fANOVA, seeds pooled)",
        "",
    ]
    params = list(dict.fromkeys(p for s in stats.samplers for p in s.importances))
    if params:
        rows = [[p, *(_f(s.importances.get(p), 3) for s in stats.samplers)] for p in params]
        lines += [md_table(["parameter", *c.samplers], rows), ""]
    else:
        lines += ["Not enough completed trials to compute importances.", ""]
    lines += diagnostics_markdown(stats)
    lines += ["## Figures", ""] + [f"![{p}]({p})" for p in pngs]
    lines += ["", "Interactive version: `report.html` (needs `plotly.min.js` beside it).", ""]
    return "\n".join(lines)


def diagnostics_markdown(stats: ComparisonStats) -> list[str]:
    if not stats.diagnostics:
        return []
    lines = [
        "## Why trials failed: layer diagnostics",
        "",
        "Measured on one fixed training batch at init and after training. *act scale*: "
        "log10 of the largest activation std over layers at init (0 = std 1, healthy; "
        "2 = outputs 100x too large); *act spread*: "
        "log10(max/min) of the activation std over layers (large: signals explode or vanish "
        "with depth); *grad ratio*: log10(first-layer / last-layer gradient norm) "
        "(strongly negative: vanishing gradients); *grad scale*: log10 of the largest "
        "gradient norm at init (large: exploding); *dead*: mean fraction of units that are "
        "<= 0 for the whole batch after training. *median value* is over completed trials, "
        "the other columns over all trials of both samplers.",
        "",
    ]
    headers = ["trials", "pruned", "failed", "median value", "act scale", "act spread"]
    headers += ["grad scale", "grad ratio", "dead"]
    for params in (("init", "batchnorm"), ("activation",), ("depth",)):
        groups = diagnostics_by(stats.diagnostics, params, stats.comparison.direction)
        if not groups:
            continue
        rows = [
            [
                g.value,
                str(g.n),
                str(g.pruned),
                str(g.failed),
                _f(g.median_value),
                _f(g.median_act_scale, 2),
                _f(g.median_act_spread, 2),
                _f(g.median_grad_scale, 2),
                _f(g.median_grad_ratio, 2),
                _f(g.median_dead, 2),
            ]
            for g in groups
        ]
        key = " / ".join(params)
        lines += [f"By `{key}`:", "", md_table([key, *headers], rows), ""]
    return lines


def write_html(
    stats: ComparisonStats, figures: dict[str, go.Figure], path: Path, *, inline_js: bool = False
) -> Path:
    """One page: summary table and every figure; plotly.js written once beside it.

    plotly.js (~4.8 MB) goes into its own file next to the page instead of a CDN link, so
    the report opens offline, and instead of inline, so several reports (and git diffs of
    a report) share one copy. `inline_js` embeds it instead: for a single file that must
    work alone, such as the dashboard artifact.
    """
    if inline_js:
        script = f"<script>{get_plotlyjs()}</script>"
    else:
        script = '<script src="plotly.min.js"></script>'
        js = path.parent / "plotly.min.js"
        if not js.exists():
            js.write_text(get_plotlyjs(), encoding="utf-8")
    table = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row in summary_rows(stats)
    )
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
    divs = "\n".join(
        fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{key}")
        for key, fig in figures.items()
    )
    c = stats.comparison
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>hpo comparison {html.escape(c.group)}</title>
{script}
<style>body{{font-family:sans-serif;max-width:1200px;margin:auto}}
table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style>
</head><body>
<h1>Sampler comparison {html.escape(c.group)}</h1>
<p>{html.escape(headline(stats))}</p>
<table><tr>{head}</tr>{table}</table>
{divs}
</body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path
