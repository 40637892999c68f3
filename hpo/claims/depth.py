"""Claims 2 and 3, about signals through depth: vanishing gradients, and initialisation.

Each function reads a claim's runs and returns its checks, table rows and figure data
(the fields of a ClaimResult that depend on the claim); hpo.claims.analyze adds the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hpo.claims.load import ClaimRuns
from hpo.claims.numbers import accuracy, band, decades, fmt, median, ratio, slope
from hpo.claims.results import Check, Curve, Panel
from hpo.claims.thresholds import EXPLODES, SATURATED, STEADY, VANISH_DECADES


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
            median([accuracy(r) for r in c.where(activation=act, depth=d)]) for d in depths
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


def _first(values: list[Any] | None) -> float | None:
    return values[0] if values else None


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
                    median([accuracy(r) for r in runs]),
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
