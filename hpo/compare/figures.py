"""Comparison figures: plotly (HTML report, optuna-dashboard) and matplotlib (PNG files).

Plotly traces get plain lists, not numpy arrays: plotly >= 6 would encode arrays as typed
binary blobs, which older plotly.js builds (such as the one inside optuna-dashboard) cannot
read. kaleido needs Chrome, which this service cannot assume, so PNGs come from matplotlib.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to files only

import matplotlib.pyplot as plt
import plotly.graph_objects as go
from matplotlib.ticker import MaxNLocator
from plotly.subplots import make_subplots

from hpo.compare.analyze import ComparisonStats, DiagRow
from hpo.compare.pareto import png_pareto
from hpo.compare.stats import Band
from hpo.report.shared import PNG_DPI, palette_color, rgba


def _list(values: Any) -> list[float | None]:
    return [
        None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in values
    ]


def _metric(stats: ComparisonStats) -> str:
    return stats.comparison.metric


def _zoom(stats: ComparisonStats) -> tuple[float, float] | None:
    """y range of the best-so-far plots: from where the bands are after the first few trials.

    The first trials (often a broken network at 10% accuracy) would otherwise squash the
    part that matters, the last percent, into a flat line at the top.
    """
    lows, highs = [], []
    for s in stats.arms:
        n = len(s.band.median)
        start = min(n - 1, max(1, n // 8))
        tail = [v for v in (*s.band.q25[start:], *s.band.q75[start:]) if not math.isnan(v)]
        if tail:
            lows.append(min(tail))
            highs.append(max(tail))
    if not lows:
        return None
    low, high = min(lows), max(highs)
    pad = 0.1 * (high - low) or 0.01 * max(abs(high), 1e-9)
    return low - pad, high + pad


# ---------------------------------------------------------------- plotly


def _band_traces(
    x: list[float], b: Band, color: str, arm: str, label: str, *, visible: bool
) -> list[go.Scatter]:
    """IQR band (two edge traces, the second filled to the first) and the median line."""
    edge = {"mode": "lines", "line": {"width": 0}, "legendgroup": arm, "visible": visible}
    return [
        go.Scatter(x=x, y=_list(b.q75), showlegend=False, hoverinfo="skip", **edge),
        go.Scatter(
            x=x,
            y=_list(b.q25),
            fill="tonexty",
            fillcolor=rgba(color, 0.2),
            name=f"{arm} IQR",
            **edge,
        ),
        go.Scatter(
            x=x,
            y=_list(b.median),
            mode="lines",
            line={"color": color, "width": 2.5},
            name=label,
            legendgroup=arm,
            visible=visible,
        ),
    ]


def best_so_far_figure(stats: ComparisonStats) -> go.Figure:
    """Median best-so-far per arm with its interquartile band, and the target; buttons
    switch the x axis between finished trials and cumulative training seconds."""
    fig = go.Figure()
    by_trials: list[bool] = []
    for i, s in enumerate(stats.arms):
        traces = _band_traces(
            s.band.trials.tolist(),
            s.band,
            palette_color(i),
            s.arm,
            f"{s.arm} median ({s.studies} seeds)",
            visible=True,
        )
        fig.add_traces(traces)
        by_trials += [True] * len(traces)
    for i, s in enumerate(stats.arms):
        # Named "ARM compute median", not "ARM median ...": one median per arm per axis.
        traces = _band_traces(
            stats.compute_grid.tolist(),
            s.compute_band,
            palette_color(i),
            s.arm,
            f"{s.arm} compute median ({s.studies} seeds)",
            visible=False,
        )
        fig.add_traces(traces)
        by_trials += [False] * len(traces)
    if math.isfinite(stats.target):
        fig.add_hline(
            y=stats.target,
            line_dash="dot",
            line_color="gray",
            annotation_text=f"target {stats.target:.4f} ({stats.baseline} median final)",
        )
    zoom = _zoom(stats)
    if zoom is not None:
        fig.update_yaxes(range=list(zoom))
    by_seconds = [not v for v in by_trials]
    fig.update_layout(
        title="Best value so far: median and interquartile band across seeds",
        xaxis_title="finished trials",
        yaxis_title=f"best {_metric(stats)}",
        template="plotly_white",
        updatemenus=[
            {
                "type": "buttons",
                "direction": "right",
                "x": 0,
                "xanchor": "left",
                "y": 1.12,
                "buttons": [
                    {
                        "label": "by trials",
                        "method": "update",
                        "args": [{"visible": by_trials}, {"xaxis.title.text": "finished trials"}],
                    },
                    {
                        "label": "by training seconds",
                        "method": "update",
                        "args": [
                            {"visible": by_seconds},
                            {"xaxis.title.text": "cumulative training seconds"},
                        ],
                    },
                ],
            }
        ],
    )
    return fig


def final_bests_figure(stats: ComparisonStats) -> go.Figure:
    """Each study's final best, per arm, as a box with every seed shown."""
    fig = go.Figure()
    for i, s in enumerate(stats.arms):
        fig.add_trace(
            go.Box(
                y=_list(s.finals),
                name=s.arm,
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker_color=palette_color(i),
                text=[f"seed {r.seed}" for r in stats.comparison.runs_of(s.arm)],
            )
        )
    fig.update_layout(
        title="Final best value per study (one point per seed)",
        yaxis_title=f"final best {_metric(stats)}",
        template="plotly_white",
        showlegend=False,
    )
    return fig


def importances_figure(stats: ComparisonStats) -> go.Figure:
    """fANOVA importance of each hyperparameter, per arm."""
    params = sorted(
        {p for s in stats.arms for p in s.importances},
        key=lambda p: sum(s.importances.get(p, 0.0) for s in stats.arms),
    )
    fig = go.Figure()
    for i, s in enumerate(stats.arms):
        fig.add_trace(
            go.Bar(
                y=params,
                x=[s.importances.get(p, 0.0) for p in params],
                orientation="h",
                name=s.arm,
                marker_color=palette_color(i),
            )
        )
    fig.update_layout(
        title="Hyperparameter importance (fANOVA, all seeds pooled)",
        xaxis_title="importance",
        barmode="group",
        template="plotly_white",
        height=max(400, 40 * len(params) * max(1, len(stats.arms))),
    )
    return fig


def params_figure(stats: ComparisonStats) -> go.Figure:
    """Value against each hyperparameter, every completed trial, colored by arm."""
    params = sorted({p for r in stats.comparison.runs for t in r.trials for p in t.params})
    cols = 3
    rows = max(1, math.ceil(len(params) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=params, vertical_spacing=0.08)
    for i, arm in enumerate(stats.comparison.arms):
        trials = [t for r in stats.comparison.runs_of(arm) for t in r.trials if t.value is not None]
        for k, p in enumerate(params):
            xs = [t.params.get(p) for t in trials]
            fig.add_trace(
                go.Scatter(
                    x=[
                        x if isinstance(x, int | float) and not isinstance(x, bool) else str(x)
                        for x in xs
                    ],
                    y=[t.value for t in trials],
                    mode="markers",
                    name=arm,
                    marker={"color": palette_color(i), "size": 5, "opacity": 0.6},
                    legendgroup=arm,
                    showlegend=k == 0,
                ),
                row=k // cols + 1,
                col=k % cols + 1,
            )
            if p in ("lr", "weight_decay"):
                fig.update_xaxes(type="log", row=k // cols + 1, col=k % cols + 1)
    fig.update_layout(
        title=f"{_metric(stats)} against each hyperparameter (completed trials)",
        height=280 * rows,
        template="plotly_white",
    )
    return fig


def _diag_points(rows: list[DiagRow], attr: str) -> tuple[list[float], list[float], list[str]]:
    xs, ys, labels = [], [], []
    for r in rows:
        x = getattr(r, attr)
        if x is None or r.value is None:
            continue
        xs.append(x)
        ys.append(r.value)
        labels.append(
            ", ".join(
                f"{k}={v}"
                for k, v in sorted(r.params.items())
                if k in ("activation", "init", "depth", "batchnorm")
            )
        )
    return xs, ys, labels


DIAG_PANELS = (
    ("init_act_scale", "log10 max act std, init"),
    ("init_grad_ratio", "log10 grad norm first/last, init"),
    ("final_dead", "dead unit fraction, final"),
)


def diagnostics_figure(stats: ComparisonStats) -> go.Figure:
    """Value against the layer diagnostics, colored by activation: why trials failed."""
    # Axis titles, not subplot titles: in the dashboard's half-width card the latter overlap.
    fig = make_subplots(rows=1, cols=3, shared_yaxes=True, horizontal_spacing=0.04)
    for k, (_, title) in enumerate(DIAG_PANELS):
        fig.update_xaxes(title_text=title, title_font_size=11, row=1, col=k + 1)
    activations = sorted({str(r.params.get("activation")) for r in stats.diagnostics})
    for i, act in enumerate(activations):
        rows = [r for r in stats.diagnostics if str(r.params.get("activation")) == act]
        for k, (attr, _) in enumerate(DIAG_PANELS):
            xs, ys, labels = _diag_points(rows, attr)
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    text=labels,
                    mode="markers",
                    name=act,
                    marker={"color": palette_color(i), "size": 5, "opacity": 0.65},
                    legendgroup=act,
                    showlegend=k == 0,
                ),
                row=1,
                col=k + 1,
            )
    fig.update_yaxes(title_text=_metric(stats), row=1, col=1)
    fig.update_layout(
        title="Why trials failed: value against layer diagnostics, by activation",
        template="plotly_white",
        height=480,
        legend={"orientation": "h", "y": -0.3},
    )
    return fig


def plotly_figures(stats: ComparisonStats) -> dict[str, go.Figure]:
    """Every interactive figure of the report, keyed by a stable id (also the dashboard's)."""
    figures = {
        "best-so-far": best_so_far_figure(stats),
        "final-bests": final_bests_figure(stats),
        "importances": importances_figure(stats),
        "params": params_figure(stats),
    }
    if stats.diagnostics:
        figures["diagnostics"] = diagnostics_figure(stats)
    return figures


# ---------------------------------------------------------------- matplotlib PNGs


def write_pngs(stats: ComparisonStats, folder: Path) -> list[Path]:
    """The key plots as PNG files; returns their paths."""
    paths = [
        _png_best_so_far(stats, folder / "best_so_far.png"),
        _png_final_bests(stats, folder / "final_bests.png"),
    ]
    if any(s.importances for s in stats.arms):
        paths.append(_png_importances(stats, folder / "importances.png"))
    if stats.diagnostics:
        paths.append(_png_diagnostics(stats, folder / "diagnostics.png"))
    if stats.comparison.reference:  # multi-objective: the fronts themselves
        paths.append(png_pareto(stats, folder / "pareto_front.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=PNG_DPI)
    plt.close(fig)
    return path


def _png_best_so_far(stats: ComparisonStats, path: Path) -> Path:
    """Two panels, one y axis: best so far against finished trials and against cumulative
    training seconds (where a pruner's savings show)."""
    fig, (by_trials, by_seconds) = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    for i, s in enumerate(stats.arms):
        x = s.band.trials
        by_trials.fill_between(x, s.band.q25, s.band.q75, color=palette_color(i), alpha=0.2)
        by_trials.plot(
            x, s.band.median, color=palette_color(i), lw=2, label=f"{s.arm} (median, IQR)"
        )
        b, grid = s.compute_band, stats.compute_grid
        by_seconds.fill_between(grid, b.q25, b.q75, color=palette_color(i), alpha=0.2)
        by_seconds.plot(grid, b.median, color=palette_color(i), lw=2, label=s.arm)
    for ax in (by_trials, by_seconds):
        if math.isfinite(stats.target):
            ax.axhline(stats.target, color="gray", ls=":", label=f"target {stats.target:.4f}")
        ax.grid(alpha=0.3)
    by_trials.xaxis.set_major_locator(MaxNLocator(integer=True))
    zoom = _zoom(stats)
    if zoom is not None:
        by_trials.set_ylim(*zoom)
    by_trials.set_xlabel("finished trials")
    by_seconds.set_xlabel("cumulative training seconds")
    by_trials.set_ylabel(f"best {_metric(stats)} so far")
    by_trials.set_title(f"{stats.comparison.group}: best so far across seeds")
    by_seconds.set_title("... against training compute")
    by_trials.legend()
    return _save(fig, path)


def _png_final_bests(stats: ComparisonStats, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 4.2))
    data = [s.finals[~(s.finals != s.finals)] for s in stats.arms]
    ax.boxplot(data, tick_labels=[s.arm for s in stats.arms], showfliers=False)
    for i, values in enumerate(data):
        jitter = [(k % 5 - 2) * 0.04 for k in range(len(values))]
        ax.scatter([i + 1 + j for j in jitter], values, color=palette_color(i), s=18, zorder=3)
    ax.set_ylabel(f"final best {_metric(stats)}")
    ax.set_title("Final best per seed")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def _png_importances(stats: ComparisonStats, path: Path) -> Path:
    params = sorted(
        {p for s in stats.arms for p in s.importances},
        key=lambda p: sum(s.importances.get(p, 0.0) for s in stats.arms),
    )
    fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(params) * len(stats.arms) + 1.2))
    height = 0.8 / max(1, len(stats.arms))
    for i, s in enumerate(stats.arms):
        ys = [k + i * height for k in range(len(params))]
        ax.barh(
            ys,
            [s.importances.get(p, 0.0) for p in params],
            height=height,
            color=palette_color(i),
            label=s.arm,
        )
    ax.set_yticks([k + 0.4 - height / 2 for k in range(len(params))], params)
    ax.set_xlabel("fANOVA importance (all seeds pooled)")
    ax.legend()
    return _save(fig, path)


def _png_diagnostics(stats: ComparisonStats, path: Path) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    activations = sorted({str(r.params.get("activation")) for r in stats.diagnostics})
    for i, act in enumerate(activations):
        rows = [r for r in stats.diagnostics if str(r.params.get("activation")) == act]
        for ax, (attr, _) in zip(axes, DIAG_PANELS, strict=True):
            xs, ys, _labels = _diag_points(rows, attr)
            ax.scatter(xs, ys, s=10, alpha=0.6, color=palette_color(i), label=act)
    for ax, (_, title) in zip(axes, DIAG_PANELS, strict=True):
        ax.set_xlabel(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(_metric(stats))
    axes[0].legend(fontsize=7, markerscale=1.5)
    fig.suptitle("Why trials failed: value against layer diagnostics, by activation")
    return _save(fig, path)
