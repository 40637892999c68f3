"""From the runs to a verdict per claim: each claim's checks, in report order.

Every check compares numbers with a threshold (hpo.claims.thresholds); the report prints
the numbers beside the verdict, so a reader can disagree with a threshold and still use
the data. The checks themselves are pure functions of the stored numbers, one module per
group of claims: batchnorm.py (claims 1 and 4), depth.py (2 and 3), dropout.py (5).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hpo.claims.batchnorm import batchnorm_lr, rings_batchnorm
from hpo.claims.depth import initialisation, vanishing_gradients
from hpo.claims.dropout import dropout
from hpo.claims.experiments import claims
from hpo.claims.load import ClaimRuns
from hpo.claims.results import ClaimResult

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
