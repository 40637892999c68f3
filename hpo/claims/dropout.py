"""Claim 5, about dropout as regularisation: the train/validation gap against the rate.

The function reads the claim's runs and returns its checks, table rows and figure data
(the fields of a ClaimResult that depend on the claim); hpo.claims.analyze adds the rest.
"""

from __future__ import annotations

from typing import Any

from hpo.claims.load import ClaimRuns
from hpo.claims.numbers import fmt, median, slope
from hpo.claims.results import Check, Curve, Panel
from hpo.claims.thresholds import BETTER, NARROWING


def dropout(c: ClaimRuns) -> dict[str, Any]:
    """Claim 5: the train/validation gap, in accuracy and in loss, against the dropout rate."""
    rates = sorted({float(r.config["dropout"]) for r in c.runs})
    cols: dict[str, list[float | None]] = {k: [] for k in ("train", "val", "acc gap", "loss gap")}
    rows = []
    for rate in rates:
        runs = [r for r in c.where(dropout=rate) if not r.diverged]
        train_acc = [r.attrs.get("final_train_accuracy") for r in runs]
        val_loss = [_last(r.attrs.get("val_loss")) for r in runs]
        train_loss = [r.attrs.get("final_train_loss") for r in runs]
        acc_gap = [_minus(t, r.value) for t, r in zip(train_acc, runs, strict=True)]
        loss_gap = [_minus(v, t) for v, t in zip(val_loss, train_loss, strict=True)]
        row = [
            median(train_acc),
            median([r.value for r in runs]),
            median(acc_gap),
            median(loss_gap),
        ]
        for key, value in zip(cols, row, strict=True):
            cols[key].append(value)
        rows.append([rate, len(runs), *row[:3], median(train_loss), median(val_loss), row[3]])

    def narrows(key: str, what: str) -> Check:
        g = cols[key]
        first, last = (g[0], g[-1]) if g else (None, None)
        return Check(
            f"the {what} gap narrows as the rate rises (by >= {NARROWING:.0%} at the highest)",
            None
            if first is None or last is None or len(g) < 2
            else (last <= (1 - NARROWING) * first),
            f"{what} gap {fmt(first)} at rate {fmt(rates[0]) if rates else '-'}, "
            f"{fmt(last)} at rate {fmt(rates[-1]) if rates else '-'} "
            f"(slope {fmt(slope(rates, g), 2)} per unit rate)",
        )

    val = cols["val"]
    best_k = max(range(1, len(val)), key=lambda k: val[k] or 0.0, default=None)
    improves = (
        None
        if best_k is None or val[0] is None or val[best_k] is None
        else (val[best_k] >= val[0] + BETTER)
    )
    checks = [
        narrows("acc gap", "accuracy"),
        narrows("loss gap", "loss"),
        Check(
            f"validation accuracy improves with dropout (by >= {BETTER})",
            improves,
            f"median val accuracy {fmt(val[0] if val else None, 4)} without dropout, best "
            f"{fmt(val[best_k] if best_k is not None else None, 4)} at rate "
            f"{fmt(rates[best_k]) if best_k is not None else '-'}",
        ),
    ]
    x = rates
    return {
        "checks": checks,
        "headers": [
            "dropout",
            "seeds",
            "train acc",
            "val acc",
            "acc gap",
            "train loss",
            "val loss",
            "loss gap",
        ],
        "rows": rows,
        "panels": [
            Panel(
                "Train and validation accuracy (eval mode)",
                "dropout rate",
                "accuracy",
                [Curve("train", x, cols["train"]), Curve("validation", x, val)],
            ),
            Panel(
                "Train/validation gap",
                "dropout rate",
                "gap",
                [
                    Curve("accuracy gap (train - val)", x, cols["acc gap"]),
                    Curve("loss gap (val - train)", x, cols["loss gap"]),
                ],
            ),
        ],
    }


def _last(values: list[Any] | None) -> float | None:
    return values[-1] if values else None


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b
