"""Rendering of comparisons: progress lines, terminal table, Markdown, HTML, the files.

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
from rich import box
from rich.table import Table

from hpo.compare.analyze import ComparisonStats, VersusBaseline, diagnostics_by
from hpo.compare.figures import plotly_figures, write_pngs
from hpo.compare.stats import Interval
from hpo.config.paths import safe_folder_name
from hpo.report.console import console, literal, visible
from hpo.report.shared import REPORTS_DIR, md_table, plotly_script, print_files

if TYPE_CHECKING:
    from hpo.compare.run import Arm, ComparisonPlan, ComparisonProgress


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
        visible(
            f"comparison {plan.group} in {storage_shown}: {', '.join(plan.labels)} x "
            f"{plan.seeds} seed(s) x {plan.trials} trials, {workers} worker(s) per study"
        ),
        markup=False,
        soft_wrap=True,
    )


class ProgressPrinter:
    """One line per change: per arm, trials done of its budget and the best so far."""

    def __init__(self) -> None:
        self.last: tuple[object, ...] | None = None

    def __call__(self, progress: ComparisonProgress, arm: Arm) -> None:
        rows = progress.rows()
        key = tuple(rows)
        if key == self.last:
            return
        self.last = key
        parts = [
            f"[bold]{literal(arm)}[/] {done}/{budget} best {'-' if best is None else f'{best:.4f}'}"
            for arm, done, budget, best in rows
        ]
        # The study name is free text: escaped, so a '[' in it is not read as markup.
        console.print(f"{'  '.join(parts)}  (running {literal(arm.spec.name)})", soft_wrap=True)
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
    print_files(built.html, built.summary, built.pngs)


def num(value: float | None, digits: int = 4) -> str:
    """A metric or p-value to `digits` decimals; "-" for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _x(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.2f}x"


def secs(value: float | None) -> str:
    """Seconds of compute, to three significant digits below 100 s; inf: never reached."""
    if value is None or math.isnan(value):
        return "-"
    if math.isinf(value):
        return "never"
    return f"{value:.0f} s" if value >= 100 else f"{value:.3g} s"


def not_reached(reached: int, studies: int) -> str:
    """An arm whose median seed never gets to the target: no number, no interval (a ratio
    or a CI of "never" would read as a measurement), just how many seeds did."""
    return f"not reached ({reached} of {studies} seeds)"


def compute_cell(ci: Interval, reached: int, studies: int) -> str:
    if math.isinf(ci.estimate):
        return not_reached(reached, studies)
    return f"{secs(ci.estimate)} [{secs(ci.low)}, {secs(ci.high)}]"


def _xn(value: float) -> str:
    """A compute fraction in an interval: inf, the arm never reaches the target in that
    resample; 0, only the baseline never does (no ratio exists: "base never", not 0.00x)."""
    if math.isinf(value):
        return "never"
    return "base never" if value == 0 else _x(value)


def fraction_cell(ci: Interval, reached: int, studies: int) -> str:
    if math.isnan(ci.estimate):
        return "-"
    if math.isinf(ci.estimate):
        return not_reached(reached, studies)
    return f"{_x(ci.estimate)} [{_xn(ci.low)}, {_xn(ci.high)}]"


def summary_rows(stats: ComparisonStats) -> list[list[str]]:
    """The comparison table as text cells (shared by terminal, Markdown and HTML); compute
    to target first, since that is what an arm is chosen for."""
    versus = {v.arm: v for v in stats.versus}
    rows = []
    for s in stats.arms:
        v = versus.get(s.arm)
        rows.append(
            [
                s.arm,
                str(s.studies),
                str(s.trials),
                compute_cell(s.compute.median, s.compute.reached, s.compute.studies),
                "baseline"
                if v is None
                else fraction_cell(v.compute_fraction, s.compute.reached, s.compute.studies),
                f"{s.compute.reached}/{s.compute.studies}",
                "-" if s.target.trials is None else str(s.target.trials),
                f"{num(s.final.estimate)} [{num(s.final.low)}, {num(s.final.high)}]",
                f"{num(s.q25)} - {num(s.q75)}",
                "baseline" if v is None else num(v.test.p_value, 3),
                "-" if v is None else num(v.test.p_better, 2),
                "baseline" if v is None else f"{_x(v.speedup_compute)} / {_x(v.speedup_trials)}",
            ]
        )
    return rows


HEADERS = [
    "arm",
    "seeds",
    "trials",
    "compute to target [95% CI]",
    "compute vs base [95% CI]",
    "seeds at target",
    "trials to target",
    "median final best [95% CI]",
    "IQR",
    "Mann-Whitney p",
    "P(beats base)",
    "speedup compute / trials",
]
# The terminal table must fit 140 columns: these stay in the Markdown and HTML (the
# speedup is the inverse of "compute vs base"; the headline below the table gives P; the
# title gives the trials per study).
TERMINAL_LEFT_OUT = ("trials", "IQR", "P(beats base)", "speedup compute / trials")


def print_comparison(stats: ComparisonStats) -> None:
    c = stats.comparison
    table = Table(
        title=f"Comparison {literal(c.group)}: {c.metric} ({c.direction}), {c.budget} trials per "
        f"study, target {num(stats.target)} = {literal(stats.baseline)}'s median final best",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    keep = [i for i, h in enumerate(HEADERS) if h not in TERMINAL_LEFT_OUT]
    for i in keep:
        # Headers on two lines, so that the columns are as wide as their cells.
        header = HEADERS[i].replace(" [", "\n[").replace(" target", "\ntarget")
        table.add_column(
            header.replace("Mann-Whitney p", "M-W p"),
            justify="left" if i == 0 else "right",
            no_wrap=True,  # numbers, intervals and arm names whole
        )
    for row in summary_rows(stats):
        table.add_row(*(literal(row[i]) for i in keep))
    console.print(table)
    console.print(visible(headline_compute(stats)), markup=False, soft_wrap=True)
    for s in stats.arms:
        top = literal(", ".join(f"{k} {v:.2f}" for k, v in list(s.importances.items())[:4]))
        if top:
            console.print(f"[bold]{literal(s.arm)}[/] most important: {top}")


def headline_compute(stats: ComparisonStats) -> str:
    """The lead sentence: how much training compute each arm needs to reach the target,
    relative to the baseline, and honestly so when it does not get there."""
    base = stats.of(stats.baseline)
    if math.isnan(stats.target):
        return f"No target: {stats.baseline} completed no trial, so compute to target is undefined."
    target = f"{stats.baseline}'s median final best ({num(stats.target)})"
    parts = [
        f"Target: {target}; {stats.baseline} gets there in {base.compute.reached}/"
        f"{base.compute.studies} seeds, half of its seeds within "
        f"{secs(base.compute.median.estimate)} of training."
    ]
    for v in stats.versus:
        s = stats.of(v.arm)
        got = f"{s.compute.reached}/{s.compute.studies} seeds get there"
        if math.isinf(s.compute.median.estimate):
            parts.append(
                f"{v.arm} does not reach {target} in at least half of its seeds within the "
                f"budget: {not_reached(s.compute.reached, s.compute.studies)}, so it shows "
                "no compute saving."
            )
            continue
        ci = v.compute_fraction
        parts.append(
            f"{v.arm} reaches {target} with {_x(ci.estimate)} of its training compute "
            f"(95% CI {_xn(ci.low)} to {_xn(ci.high)}; median over seeds "
            f"{secs(s.compute.median.estimate)} against {secs(base.compute.median.estimate)} per "
            f"seed, {got})."
        )
    return " ".join(parts)


def headline(stats: ComparisonStats) -> str:
    """One paragraph: compute to target first, then who wins on final bests, how sure."""
    parts = [headline_compute(stats)]
    base = stats.of(stats.baseline)
    for v in stats.versus:
        s = stats.of(v.arm)
        parts.append(
            f"{v.arm} reaches a median final best of {num(s.final.estimate)} "
            f"(95% CI {num(s.final.low)}-{num(s.final.high)}) against {stats.baseline}'s "
            f"{num(base.final.estimate)} ({num(base.final.low)}-{num(base.final.high)}); "
            f"Mann-Whitney U = {num(v.test.u, 1)}, two-sided p = {num(v.test.p_value, 3)}; "
            f"a {v.arm} study beats a {stats.baseline} study with probability "
            f"{num(v.test.p_better, 2)}. {trials_sentence(stats, v)}"
        )
    return " ".join(parts)


def trials_sentence(stats: ComparisonStats, v: VersusBaseline) -> str:
    """Trials to target, which come from the median curve (the median over seeds of the
    best so far at each trial count), not from a median over seeds of per-seed counts."""
    arm, s, base = v.arm, stats.of(v.arm), stats.of(stats.baseline)
    if s.target.trials is None:
        return (
            f"The median curve of {arm} does not reach the target within the budget "
            f"({s.target.hit} of {s.target.studies} seeds' own curves do)."
        )
    return (
        f"The median curve of {arm} reaches the target after {s.target.trials} trials vs "
        f"{base.target.trials or '-'} for {stats.baseline} "
        f"({_x(v.speedup_trials)} in trials)."
    )


def markdown_summary(stats: ComparisonStats, pngs: list[str]) -> str:
    c = stats.comparison
    space = ", ".join(sorted(c.spec.get("space", {})))
    data, train = (c.spec.get(k, {}) for k in ("data", "train"))
    file_pruner = c.spec.get("pruner", {}).get("name")
    pruners = {r.arm: r.pruner or file_pruner for r in c.runs}
    arms = ", ".join(f"`{a}` (pruner {pruners[a]})" for a in c.arms)
    lines = [
        f"# Comparison of search strategies `{c.group}`",
        "",
        f"{arms} x {max(s.studies for s in stats.arms)} seeds x "
        f"{c.budget} trials; model `{c.spec.get('model')}` on `{data.get('name')}`,"
        f" {train.get('epochs')} epochs, metric `{c.metric}` ({c.direction}); "
        f"search space: {space}.",
        "",
        headline(stats),
        "",
        *_reference_lines(c.reference),
        md_table(HEADERS, summary_rows(stats)),
        "",
        f"Target = {stats.baseline}'s median final best ({num(stats.target)}). *Compute to "
        "target*: per seed, the training seconds (`train_seconds` of each trial; a failed "
        "trial that recorded none counts its wall time) summed in trial-number order, pruned "
        "and failed trials included, until that seed's best so far reaches the target; the "
        "cell is the median over seeds, a seed that never gets there counting as never; "
        "when fewer than half the seeds get there it reads *not reached (k of n seeds)*, "
        "with no number and no interval. "
        f"*Compute vs base*: that median as a fraction of {stats.baseline}'s (0.25x = a "
        "quarter of the compute; CI from resampling both arms' seeds; *never* at an end: "
        "resamples where the arm does not get there; *base never*: resamples where only "
        f"{stats.baseline} does not, so no ratio exists). *Trials to target*: "
        "finished trials until the median curve (the median over seeds of the best so far "
        "at each trial count) reaches it. *Speedup*: the baseline's value over the arm's. "
        "CIs: percentile bootstrap, 10,000 resamples, seed 0.",
        "",
        "## Which hyperparameters mattered (fANOVA, seeds pooled)",
        "",
    ]
    params = list(dict.fromkeys(p for s in stats.arms for p in s.importances))
    if params:
        rows = [[p, *(num(s.importances.get(p), 3) for s in stats.arms)] for p in params]
        lines += [md_table(["parameter", *c.arms], rows), ""]
    elif c.reference:
        lines += [
            "Not computed for a multi-objective comparison: a trade-off has no one value.",
            "",
        ]
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
        "the other columns over all trials of every arm.",
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
                num(g.median_value),
                num(g.median_act_scale, 2),
                num(g.median_act_spread, 2),
                num(g.median_grad_scale, 2),
                num(g.median_grad_ratio, 2),
                num(g.median_dead, 2),
            ]
            for g in groups
        ]
        key = " / ".join(params)
        lines += [f"By `{key}`:", "", md_table([key, *headers], rows), ""]
    return lines


def write_html(
    stats: ComparisonStats, figures: dict[str, go.Figure], path: Path, *, inline_js: bool = False
) -> Path:
    """One page: summary table and every figure; plotly.js beside it (or inlined: see
    hpo.report.shared.plotly_script)."""
    script = plotly_script(path, inline_js=inline_js)
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
<h1>Comparison of search strategies {html.escape(c.group)}</h1>
<p>{html.escape(headline(stats))}</p>
<table><tr>{head}</tr>{table}</table>
{divs}
</body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path


def _reference_lines(reference: str) -> list[str]:
    """What a multi-objective comparison's values are: hypervolume, and its reference."""
    if not reference:
        return []
    return [
        "Multi-objective: each study is judged by the hypervolume of its feasible Pareto "
        "front so far (metrics scaled to [0, 1] between the best and worst values any "
        "feasible trial of the comparison reached, reference point 1.1 on each scaled axis; "
        f"in the metrics' units: {reference}).",
        "",
    ]
