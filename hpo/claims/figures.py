"""The claims' figures: plotly (HTML report, optuna-dashboard) and matplotlib (PNG files).

Both draw the same generic pieces of a ClaimResult: panels of median curves with a
min-max band over seeds, and decision boundaries as images with the data on top. Plotly
gets plain lists (see hpo.compare.figures for why).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to files only

import matplotlib.pyplot as plt
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hpo.claims.results import Boundary, ClaimResult, Curve, Panel
from hpo.report.shared import PNG_DPI, palette_color, rgba  # one palette for every report

POINT_COLORS = ("#1f77b4", "#d62728")  # inner ring (class 0), outer ring (class 1)


def _plain(values: list[float | None]) -> list[float | None]:
    return [None if v is None or not math.isfinite(v) else float(v) for v in values]


def _axis(boundary: Boundary) -> list[float]:
    n = len(boundary.grid)
    return [-boundary.extent + 2 * boundary.extent * i / (n - 1) for i in range(n)]


# ---------------------------------------------------------------- plotly


def _curve_traces(curve: Curve, color: str, group: str, legend: bool) -> list[go.Scatter]:
    traces = []
    if curve.low and curve.high:
        edge = {"mode": "lines", "line": {"width": 0}, "legendgroup": group, "showlegend": False}
        traces += [
            go.Scatter(x=curve.x, y=_plain(curve.high), hoverinfo="skip", **edge),
            go.Scatter(
                x=curve.x,
                y=_plain(curve.low),
                fill="tonexty",
                fillcolor=rgba(color, 0.2),
                name=f"{curve.label} min-max",
                **edge,
            ),
        ]
    traces.append(
        go.Scatter(
            x=curve.x,
            y=_plain(curve.y),
            mode="lines+markers",
            line={"color": color, "width": 2},
            name=curve.label,
            legendgroup=group,
            showlegend=legend,
        )
    )
    return traces


def panels_figure(result: ClaimResult) -> go.Figure:
    """The claim's panels side by side; one legend entry per curve label."""
    panels = result.panels
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p.title for p in panels])
    labels: list[str] = []
    for k, panel in enumerate(panels):
        for curve in panel.curves:
            if curve.label not in labels:
                labels.append(curve.label)
            i = labels.index(curve.label)
            legend = all(curve.label not in [c.label for c in p.curves] for p in panels[:k])
            for trace in _curve_traces(curve, palette_color(i), curve.label, legend):
                fig.add_trace(trace, row=1, col=k + 1)
        fig.update_xaxes(title_text=panel.x_title, row=1, col=k + 1)
        fig.update_yaxes(title_text=panel.y_title, row=1, col=k + 1)
        if panel.x_log:
            fig.update_xaxes(type="log", row=1, col=k + 1)
        if panel.y_log:
            fig.update_yaxes(type="log", row=1, col=k + 1)
    fig.update_layout(
        title=f"{result.title}: {result.verdict}",
        template="plotly_white",
        height=450,
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def boundary_figure(result: ClaimResult) -> go.Figure:
    """Each boundary as a probability image with its 0.5 contour and the validation data."""
    fig = make_subplots(
        rows=1, cols=len(result.boundaries), subplot_titles=[b.label for b in result.boundaries]
    )
    for k, b in enumerate(result.boundaries):
        axis = _axis(b)
        fig.add_trace(
            go.Heatmap(
                x=axis,
                y=axis,
                z=b.grid,
                zmin=0,
                zmax=100,
                colorscale="RdBu_r",
                showscale=k == 0,
                colorbar={"title": "P(outer) %"},
            ),
            row=1,
            col=k + 1,
        )
        fig.add_trace(
            go.Contour(
                x=axis,
                y=axis,
                z=b.grid,
                contours={"start": 50, "end": 50, "coloring": "none"},
                line={"color": "black", "width": 2},
                showscale=False,
                hoverinfo="skip",
            ),
            row=1,
            col=k + 1,
        )
        for label in (0, 1):
            pts = [p for p in b.points if int(p[2]) == label]
            fig.add_trace(
                go.Scatter(
                    x=[p[0] for p in pts],
                    y=[p[1] for p in pts],
                    mode="markers",
                    marker={"size": 4, "color": POINT_COLORS[label], "line": {"width": 0.5}},
                    name=("inner" if label == 0 else "outer") + " ring (validation)",
                    showlegend=k == 0,
                ),
                row=1,
                col=k + 1,
            )
        fig.update_yaxes(scaleanchor=f"x{k + 1 if k else ''}", row=1, col=k + 1)
    fig.update_layout(
        title="Learned decision boundary (black: P = 0.5), standardized inputs",
        template="plotly_white",
        height=480,
    )
    return fig


def plotly_figures(results: list[ClaimResult]) -> dict[str, go.Figure]:
    """Every interactive figure, keyed by a stable id: the claim's name (and -boundary)."""
    figures = {}
    for result in results:
        if result.panels:
            figures[result.name] = panels_figure(result)
        if result.boundaries:
            figures[f"{result.name}-boundary"] = boundary_figure(result)
    return figures


# ---------------------------------------------------------------- matplotlib PNGs


def _draw_panel(ax: Any, panel: Panel, colors: dict[str, str]) -> None:
    for curve in panel.curves:
        color = colors.setdefault(curve.label, palette_color(len(colors)))
        if curve.low and curve.high:
            pairs = [
                (x, lo, hi)
                for x, lo, hi in zip(curve.x, curve.low, curve.high, strict=True)
                if lo is not None and hi is not None
            ]
            if pairs:
                xs, los, his = zip(*pairs, strict=True)
                ax.fill_between(xs, los, his, color=color, alpha=0.2, lw=0)
        points = [(x, y) for x, y in zip(curve.x, curve.y, strict=True) if y is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, color=color, lw=2, marker="o", ms=3, label=curve.label)
    if panel.x_log:
        ax.set_xscale("log")
    if panel.y_log:
        ax.set_yscale("log")
    ax.set_title(panel.title, fontsize=10)
    ax.set_xlabel(panel.x_title)
    ax.set_ylabel(panel.y_title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def _draw_boundary(ax: Any, b: Boundary) -> None:
    axis = _axis(b)
    extent = (axis[0], axis[-1], axis[0], axis[-1])
    ax.imshow(b.grid, origin="lower", extent=extent, cmap="RdBu_r", vmin=0, vmax=100, alpha=0.8)
    ax.contour(axis, axis, b.grid, levels=[50], colors="black", linewidths=1.5)
    for label in (0, 1):
        pts = [p for p in b.points if int(p[2]) == label]
        ax.scatter(
            [p[0] for p in pts],
            [p[1] for p in pts],
            s=6,
            color=POINT_COLORS[label],
            edgecolors="white",
            linewidths=0.3,
        )
    ax.set_title(b.label, fontsize=9)
    ax.set_aspect("equal")


def write_png(result: ClaimResult, folder: Path) -> Path:
    """One PNG per claim: its panels, then its decision boundaries, in one row."""
    n = len(result.panels) + len(result.boundaries)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4.2), squeeze=False)
    colors: dict[str, str] = {}
    for ax, panel in zip(axes[0], result.panels, strict=False):
        _draw_panel(ax, panel, colors)
    for ax, b in zip(axes[0][len(result.panels) :], result.boundaries, strict=True):
        _draw_boundary(ax, b)
    fig.suptitle(f"{result.title}: {result.verdict}", fontsize=11)
    fig.tight_layout()
    path = folder / f"{result.name}.png"
    fig.savefig(path, dpi=PNG_DPI)
    plt.close(fig)
    return path


def write_pngs(results: list[ClaimResult], folder: Path) -> list[Path]:
    return [write_png(r, folder) for r in results if r.panels or r.boundaries]
