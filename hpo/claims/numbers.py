"""Small pure functions over the runs' numbers, shared by every claim's checks.

Seeds are summarised by their median (min and max as a band); a diverged run counts as
accuracy 0 where accuracies are compared (`accuracy`), and missing or non-finite values
are left out of medians of anything else (`finite`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from hpo.claims.load import RunRecord


def finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def median(values: Sequence[float | None]) -> float | None:
    """Median of the finite values; None if there are none."""
    kept = finite(values)
    return statistics.median(kept) if kept else None


def band(
    curves: Sequence[Sequence[float | None]],
) -> tuple[list[float | None], list[float | None], list[float | None]]:
    """Per index: median, min and max over the curves (a shorter curve drops out)."""
    n = max((len(c) for c in curves), default=0)
    columns = [finite([c[i] for c in curves if i < len(c)]) for i in range(n)]
    return (
        [statistics.median(col) if col else None for col in columns],
        [min(col) if col else None for col in columns],
        [max(col) if col else None for col in columns],
    )


def epochs_to(curve: Sequence[float | None], target: float) -> int | None:
    """The first epoch (1-based) whose value reaches `target`; None if none does."""
    for epoch, value in enumerate(curve, start=1):
        if value is not None and value >= target:
            return epoch
    return None


def slope(xs: Sequence[float], ys: Sequence[float | None]) -> float | None:
    """Least-squares slope of y on x over the points with a finite y; None below 2 points."""
    pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None and math.isfinite(y)]
    if len(pairs) < 2 or len({x for x, _ in pairs}) < 2:
        return None
    mx = sum(x for x, _ in pairs) / len(pairs)
    my = sum(y for _, y in pairs) / len(pairs)
    sxx = sum((x - mx) ** 2 for x, _ in pairs)
    return sum((x - mx) * (y - my) for x, y in pairs) / sxx


def decades(first: float | None, last: float | None) -> float | None:
    """log10(first / last): how many decades a positive quantity fell (negative: rose)."""
    if first is None or last is None or first <= 0 or last <= 0:
        return None
    return math.log10(first / last)


def highest_usable(accuracy: dict[float, float | None], floor: float) -> float | None:
    """The highest learning rate whose accuracy reaches `floor`; None if none does."""
    usable = [lr for lr, acc in accuracy.items() if acc is not None and acc >= floor]
    return max(usable) if usable else None


def median_epochs(epochs: Sequence[int | None]) -> float | None:
    """Median epochs to a target; a run that never gets there counts as infinitely slow, so
    the median is inf when half or more never do. None without runs."""
    if not epochs:
        return None
    return statistics.median(math.inf if e is None else float(e) for e in epochs)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def fmt(value: float | None, digits: int = 3) -> str:
    """A number for a sentence: 3 significant digits, '-' for none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}g}"


def accuracy(run: RunRecord) -> float:
    """Final validation accuracy; a diverged run counts as 0 (it has no usable model)."""
    return 0.0 if run.value is None else run.value
