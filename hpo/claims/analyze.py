"""From the runs to a verdict per claim: pure functions of the stored numbers.

Every check compares numbers with a threshold stated here; the report prints the numbers
beside the verdict, so a reader can disagree with a threshold and still use the data.
Seeds are summarised by their median (min and max shown as a band); a diverged run counts
as accuracy 0 where accuracies are compared, and is left out of medians of anything else.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hpo.claims.experiments import claims
from hpo.claims.load import GRID_ATTR, ClaimRuns, RunRecord
from hpo.claims.run import BOUNDARY_EXTENT

# --- thresholds --------------------------------------------------------------------------------

TARGET_ACCURACY = 0.90  # claim 1: "a good validation accuracy" on rings (best runs reach ~0.96)
SAME_ACCURACY = 0.01  # claim 1: "at least as accurate" = final accuracy no more than this lower
VANISH_DECADES = 1.0  # claim 2: a gradient "vanishes" when it falls >= 10x over the depths run
STEADY = 3.0  # claim 3: activation std "steady" when last/first layer is within 3x either way
EXPLODES = 10.0  # claim 3: "explodes" when last/first layer activation std is above 10
SATURATED = 0.9  # claim 3: tanh "saturated" when the last layer's std is >= 0.9 (max 1: +-1)
USABLE_DROP = 0.05  # claim 4: an lr is usable when its accuracy is within 5 points of the best
# claim 4: lrs are a grid of quarter decades, so ratios are 10^(k/4); compared in decades
# with GRID_SLACK for the rounding of the grid values (10^-1.5 is stored as 0.0316).
HIGHER_LR = 0.5  # "higher": at least half a decade (about 3x) higher
ABOUT_10X = 0.25  # "about 10x": within a quarter decade (one grid step) of 10x
GRID_SLACK = 0.01
NARROWING = 0.25  # claim 5: a gap "narrows" when the highest rate cuts it by >= a quarter
BETTER = 0.005  # claim 5: validation accuracy "improves" by at least half a point


@dataclass(frozen=True)
class Check:
    """One statement of the claim, tested against the data."""

    text: str  # the statement, in the lectures' terms
    agrees: bool | None  # None: the data cannot say (runs missing)
    because: str  # the numbers it rests on


@dataclass(frozen=True)
class Curve:
    label: str
    x: list[float]
    y: list[float | None]  # median over seeds
    low: list[float | None] = field(default_factory=list)  # min over seeds ([]: no band)
    high: list[float | None] = field(default_factory=list)  # max over seeds


@dataclass(frozen=True)
class Panel:
    title: str
    x_title: str
    y_title: str
    curves: list[Curve]
    x_log: bool = False
    y_log: bool = False


@dataclass(frozen=True)
class Boundary:
    """A run's decision boundary: P(class 1) in percent on a square grid, and data points."""

    label: str
    extent: float  # the grid spans [-extent, extent] on both inputs
    grid: list[list[int]]  # row i: i-th value of the second input, bottom to top
    points: list[list[float]]  # [x, y, label]


@dataclass(frozen=True)
class ClaimResult:
    name: str
    title: str
    statement: str
    study_name: str
    study_id: int
    runs: int
    diverged: int
    checks: list[Check]
    headers: list[str]
    rows: list[list[Any]]  # numbers as numbers; the report formats them
    panels: list[Panel]
    boundaries: list[Boundary] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return verdict([c.agrees for c in self.checks])


def verdict(agrees: Sequence[bool | None]) -> str:
    """'agrees' when every check does, 'does not agree' when none does, else 'partly agrees';
    checks the data cannot decide are left out."""
    known = [a for a in agrees if a is not None]
    if not known:
        return "not enough data"
    if all(known):
        return "agrees"
    return "does not agree" if not any(known) else "partly agrees"


# --- small pure functions ----------------------------------------------------------------------


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


def _accuracy(run: RunRecord) -> float:
    """Final validation accuracy; a diverged run counts as 0 (it has no usable model)."""
    return 0.0 if run.value is None else run.value


def _first(values: list[Any] | None) -> float | None:
    return values[0] if values else None


# --- the claims --------------------------------------------------------------------------------


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
        final[bn] = median([_accuracy(r) for r in runs])
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
                min(finite([_accuracy(r) for r in runs]), default=None),
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


def vanishing_gradients(c: ClaimRuns) -> dict[str, Any]:
    """Claim 2: first-layer gradient norm against depth, per activation, init and final."""
    activations = list(dict.fromkeys(r.config["activation"] for r in c.runs))
    depths = sorted({int(r.config["depth"]) for r in c.runs})
    grads: dict[str, dict[str, list[float | None]]] = {"init": {}, "final": {}}
    accs: dict[str, list[float | None]] = {}
    rows = []
    for act in activations:
        for phase in grads:
            grads[phase][act] = [
                median(
                    [
                        _first(r.attrs.get(f"diag_{phase}_grad_norm"))
                        for r in c.where(activation=act, depth=d)
                    ]
                )
                for d in depths
            ]
        accs[act] = [
            median([_accuracy(r) for r in c.where(activation=act, depth=d)]) for d in depths
        ]
        for k, d in enumerate(depths):
            rows.append([act, d, grads["init"][act][k], grads["final"][act][k], accs[act][k]])
    fall = {
        phase: {a: decades(g[a][0], g[a][-1]) if depths else None for a in activations}
        for phase, g in grads.items()
    }
    slopes = {
        phase: {a: slope(depths, [_log10(v) for v in g[a]]) for a in activations}
        for phase, g in grads.items()
    }
    span = f"depth {depths[0]} to {depths[-1]}" if depths else "the depths run"
    checks = []
    for phase, when in (("init", "at initialisation"), ("final", "after training")):
        f = fall[phase]
        numbers = "; ".join(
            f"{a} {_fall(f[a])} (slope {fmt(slopes[phase][a], 2)} decades/layer)"
            for a in activations
        )
        sig, relu = f.get("sigmoid"), f.get("relu")
        agrees = (
            None
            if sig is None or relu is None
            else (sig >= VANISH_DECADES and relu < VANISH_DECADES)
        )
        checks.append(
            Check(
                f"{when}, sigmoid's first-layer gradient vanishes with depth and ReLU's does "
                f"not (falls >= {VANISH_DECADES:g} decade from {span})",
                agrees,
                numbers,
            )
        )
    f = fall["init"]
    if all(f.get(a) is not None for a in ("sigmoid", "tanh", "relu")):
        between = f["relu"] <= f["tanh"] <= f["sigmoid"]
        checks.append(
            Check(
                "tanh is in between (at initialisation)",
                between,
                f"relu {_fall(f['relu'])}, tanh {_fall(f['tanh'])}, sigmoid "
                f"{_fall(f['sigmoid'])}: tanh is {'' if between else 'not '}in between",
            )
        )
    x = [float(d) for d in depths]
    return {
        "checks": checks,
        "headers": ["activation", "depth", "grad norm init", "grad norm final", "val acc"],
        "rows": rows,
        "panels": [
            Panel(
                "First-layer gradient norm at initialisation",
                "depth (hidden layers)",
                "|dL/dW1|",
                [Curve(a, x, grads["init"][a]) for a in activations],
                y_log=True,
            ),
            Panel(
                "... after training",
                "depth (hidden layers)",
                "|dL/dW1|",
                [Curve(a, x, grads["final"][a]) for a in activations],
                y_log=True,
            ),
            Panel(
                "Validation accuracy after training",
                "depth (hidden layers)",
                "validation accuracy",
                [Curve(a, x, accs[a]) for a in activations],
            ),
        ],
    }


def _fall(value: float | None) -> str:
    """'falls 2 decades' / 'rises 0.5 decades' for a change in decades (positive: fell)."""
    if value is None:
        return "-"
    return f"{'falls' if value >= 0 else 'rises'} {fmt(abs(value), 2)} decades"


def _log10(value: float | None) -> float | None:
    return math.log10(value) if value is not None and value > 0 else None


def initialisation(c: ClaimRuns) -> dict[str, Any]:
    """Claim 3: activation std layer by layer at init, per activation and init scheme."""
    activations = list(dict.fromkeys(r.config["activation"] for r in c.runs))
    inits = list(dict.fromkeys(r.config["init"] for r in c.runs))
    stds: dict[tuple[str, str], list[float | None]] = {}
    rows, panels = [], []
    for act in activations:
        curves = []
        for init in inits:
            runs = c.where(activation=act, init=init)
            mid, low, high = band([r.attrs.get("diag_init_act_std", []) for r in runs])
            stds[act, init] = mid
            x = [float(i + 1) for i in range(len(mid))]
            curves.append(Curve(init, x, mid, low, high))
            first, last = (mid[0], mid[-1]) if mid else (None, None)
            rows.append(
                [
                    act,
                    init,
                    first,
                    last,
                    ratio(last, first),
                    median([_accuracy(r) for r in runs]),
                    sum(r.diverged for r in runs),
                ]
            )
        panels.append(
            Panel(
                f"Activation std across depth, {act}", "layer", "activation std", curves, y_log=True
            )
        )

    def last_over_first(act: str, init: str) -> float | None:
        s = stds.get((act, init), [])
        return ratio(s[-1], s[0]) if s else None

    def check(text: str, act: str, init: str, test: Callable[[float], bool]) -> Check:
        r = last_over_first(act, init)
        s = stds.get((act, init), [])
        return Check(
            text,
            None if r is None else test(r),
            f"{act} with {init}: std {fmt(s[0] if s else None)} at layer 1, "
            f"{fmt(s[-1] if s else None)} at layer {len(s)} (x{fmt(r)})",
        )

    tanh_naive = stds.get(("tanh", "naive"), [])
    checks = [
        check(
            f"N(0, 1) makes ReLU activations explode (last/first > {EXPLODES:g})",
            "relu",
            "naive",
            lambda r: r > EXPLODES,
        ),
        Check(
            f"N(0, 1) saturates tanh (last layer's std >= {SATURATED}: outputs pinned at +-1)",
            None if not tanh_naive or tanh_naive[-1] is None else tanh_naive[-1] >= SATURATED,
            f"tanh with naive: std {fmt(tanh_naive[-1] if tanh_naive else None)} at the last layer",
        ),
        check(
            f"Xavier keeps tanh steady (last/first within {STEADY:g}x)",
            "tanh",
            "xavier",
            lambda r: 1 / STEADY <= r <= STEADY,
        ),
        check(
            f"He keeps ReLU steady (last/first within {STEADY:g}x)",
            "relu",
            "he",
            lambda r: 1 / STEADY <= r <= STEADY,
        ),
        check(
            f"Xavier lets ReLU's shrink (last/first < 1/{STEADY:g})",
            "relu",
            "xavier",
            lambda r: r < 1 / STEADY,
        ),
    ]
    return {
        "checks": checks,
        "headers": [
            "activation",
            "init",
            "std layer 1",
            "std last layer",
            "last/first",
            "median val acc",
            "diverged",
        ],
        "rows": rows,
        "panels": panels,
    }


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
                    _accuracy(r)
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


ANALYSES: dict[str, Callable[[ClaimRuns], dict[str, Any]]] = {
    "rings-batchnorm": rings_batchnorm,
    "vanishing-gradients": vanishing_gradients,
    "initialisation": initialisation,
    "batchnorm-lr": batchnorm_lr,
    "dropout": dropout,
}


def analyze(runs: list[ClaimRuns]) -> list[ClaimResult]:
    """Each claim's verdict, checks, table and figure data, in the order of `claims()`."""
    known = {c.name: c for c in claims()}
    order = list(known)
    out = []
    for c in sorted(runs, key=lambda c: order.index(c.name) if c.name in known else len(order)):
        if c.name not in ANALYSES:
            continue  # a claim of a later hpo version: this one cannot judge it
        parts = ANALYSES[c.name](c)
        out.append(
            ClaimResult(
                name=c.name,
                title=known[c.name].title,
                statement=known[c.name].statement,
                study_name=c.study_name,
                study_id=c.study_id,
                runs=len(c.runs),
                diverged=sum(r.diverged for r in c.runs),
                **parts,
            )
        )
    return out
