"""Claims 1 and 4, about BatchNorm: the rings network's speed, and higher learning rates.

Each function reads a claim's runs and returns its checks, table rows and figure data
(the fields of a ClaimResult that depend on the claim); hpo.claims.analyze adds the rest.
"""

from __future__ import annotations

import math
from typing import Any

from hpo.claims.load import GRID_ATTR, ClaimRuns
from hpo.claims.numbers import (
    accuracy,
    band,
    epochs_to,
    finite,
    fmt,
    highest_usable,
    median,
    median_epochs,
    ratio,
)
from hpo.claims.results import Boundary, Check, Curve, Panel
from hpo.claims.run import BOUNDARY_EXTENT
from hpo.claims.thresholds import (
    ABOUT_10X,
    GRID_SLACK,
    HIGHER_LR,
    SAME_ACCURACY,
    TARGET_ACCURACY,
    USABLE_DROP,
)


def rings_batchnorm(c: ClaimRuns) -> dict[str, Any]:
    """Claim 1: epochs to TARGET_ACCURACY and final accuracy, with and without BatchNorm."""
    arms = {False: "without BatchNorm", True: "with BatchNorm"}
    acc_curves, loss_curves, rows, reach, final = [], [], [], {}, {}
    boundaries = []
    for bn, label in arms.items():
        runs = c.where(batchnorm=bn)
        vals = [r.attrs.get("val_accuracy", []) for r in runs]
        losses = [r.attrs.get("train_loss", []) for r in runs]
        epochs = [epochs_to(v, TARGET_ACCURACY) for v in vals]
        reach[bn] = median_epochs(epochs)
        final[bn] = median([accuracy(r) for r in runs])
        for curves, into in ((vals, acc_curves), (losses, loss_curves)):
            mid, low, high = band(curves)
            x = [float(i + 1) for i in range(len(mid))]
            into.append(Curve(f"{label} ({len(runs)} seeds)", x, mid, low, high))
        rows.append(
            [
                label,
                len(runs),
                ", ".join("never" if e is None else str(e) for e in epochs),
                reach[bn],
                final[bn],
                min(finite([accuracy(r) for r in runs]), default=None),
                median([r.attrs.get("final_train_loss") for r in runs]),
            ]
        )
        shown = next((r for r in runs if GRID_ATTR in r.attrs), None)
        if shown is not None:
            boundaries.append(
                Boundary(
                    f"{label}, seed {shown.config.get('seed')}: val accuracy {fmt(shown.value)}",
                    BOUNDARY_EXTENT,
                    shown.attrs[GRID_ATTR],
                    c.points,
                )
            )
    target = f"{TARGET_ACCURACY:.0%} validation accuracy"
    faster = (
        None
        if not c.where(batchnorm=True) or not c.where(batchnorm=False)
        else (
            reach[True] is not None
            and reach[False] is not None
            and math.isfinite(reach[True])
            and reach[True] < reach[False]
        )
    )
    ends = (
        None
        if final[True] is None or final[False] is None
        else (final[True] >= final[False] - SAME_ACCURACY)
    )
    checks = [
        Check(
            f"BatchNorm reaches {target} in fewer epochs",
            faster,
            f"median epochs to {target}: {_epochs(reach[True])} with BatchNorm, "
            f"{_epochs(reach[False])} without",
        ),
        Check(
            "and ends at least as accurate",
            ends,
            f"median final validation accuracy {fmt(final[True], 4)} with BatchNorm, "
            f'{fmt(final[False], 4)} without ("as accurate": at most {SAME_ACCURACY} lower)',
        ),
    ]
    return {
        "checks": checks,
        "headers": [
            "network",
            "seeds",
            f"epochs to {TARGET_ACCURACY:.0%} per seed",
            "median epochs",
            "median final val acc",
            "worst final val acc",
            "median final train loss",
        ],
        "rows": rows,
        "panels": [
            Panel("Validation accuracy per epoch", "epoch", "validation accuracy", acc_curves),
            Panel("Training loss per epoch", "epoch", "training loss", loss_curves),
        ],
        "boundaries": boundaries,
    }


def _epochs(value: float | None) -> str:
    if value is None:
        return "-"
    return "never (median seed)" if math.isinf(value) else f"{value:g}"


def batchnorm_lr(c: ClaimRuns) -> dict[str, Any]:
    """Claim 4: per setting, the highest usable learning rate with and without BatchNorm."""
    settings = list(dict.fromkeys(r.config.get("setting", "-") for r in c.runs))
    rows, panels, checks = [], [], []
    for setting in settings:
        runs = c.where(setting=setting) if setting != "-" else c.runs
        lrs = sorted({float(r.config["lr"]) for r in runs})
        acc: dict[bool, dict[float, float | None]] = {}
        curves = []
        for bn in (False, True):
            by_lr = [
                [
                    accuracy(r)
                    for r in runs
                    if r.config["batchnorm"] == bn and float(r.config["lr"]) == lr
                ]
                for lr in lrs
            ]
            acc[bn] = {lr: median(v) for lr, v in zip(lrs, by_lr, strict=True)}
            curves.append(
                Curve(
                    "with BatchNorm" if bn else "without BatchNorm",
                    lrs,
                    list(acc[bn].values()),
                    [min(v) if v else None for v in by_lr],
                    [max(v) if v else None for v in by_lr],
                )
            )
        best = max(finite([*acc[False].values(), *acc[True].values()]), default=None)
        floor = None if best is None else best - USABLE_DROP
        top = {bn: None if floor is None else highest_usable(acc[bn], floor) for bn in acc}
        gain = ratio(top[True], top[False])
        if top[False] is None and top[True] is not None:
            gain = math.inf  # no learning rate is usable without BatchNorm, some are with it
        for bn in (False, True):
            a = acc[bn]
            peak = max(finite(list(a.values())), default=None)
            rows.append(
                [
                    setting,
                    "with" if bn else "without",
                    top[bn],
                    peak,
                    sum(r.diverged for r in runs if r.config["batchnorm"] == bn),
                ]
            )
        shown = "inf" if gain == math.inf else fmt(gain)
        found = (
            f"highest lr within {USABLE_DROP} of the best median accuracy ({fmt(best, 4)}): "
            f"{fmt(top[True])} with BatchNorm, {fmt(top[False])} without, x{shown}"
        )
        steps = None if gain is None else (math.inf if gain == math.inf else math.log10(gain))
        checks += [
            Check(
                f"{setting}: BatchNorm trains well at a higher learning rate (at least "
                f"{HIGHER_LR:g} decade higher)",
                None if steps is None else steps >= HIGHER_LR - GRID_SLACK,
                found,
            ),
            Check(
                f"{setting}: about 10x higher (within {ABOUT_10X:g} decade of 10x)",
                None if steps is None else abs(steps - 1) <= ABOUT_10X + GRID_SLACK,
                f"the ratio is x{shown}",
            ),
        ]
        panels.append(
            Panel(
                f"{setting}: validation accuracy against learning rate",
                "learning rate",
                "final validation accuracy",
                curves,
                x_log=True,
            )
        )
    return {
        "checks": checks,
        "headers": [
            "setting",
            "BatchNorm",
            "highest usable lr",
            "best median val acc",
            "diverged runs",
        ],
        "rows": rows,
        "panels": panels,
    }
