"""Reading the claims back from the storage, as plain data for the analysis and figures.

Each claim's study carries the user attrs naming its claim and size (written by
hpo.claims.run); each trial is one run, its attrs holding the run's key, its whole
configuration, the per-epoch curves, the layer diagnostics and, for the rings network,
the decision-boundary grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from hpo.errors import HpoError
from hpo.storage._optuna import study_id
from hpo.storage.urls import mask_url

CLAIM_ATTR = "hpo_claim"  # study user attr: which claim the study tests
SIZE_ATTR = "hpo_claims_size"  # study user attr: full | quick
POINTS_ATTR = "claim_points"  # study user attr: validation points [x, y, label] to plot
RUN_ATTR = "claim_run"  # trial user attr: the run's key within its claim
CONFIG_ATTR = "claim_config"  # trial user attr: the run's whole configuration
GRID_ATTR = "claim_boundary"  # trial user attr: P(class 1) in percent on a square grid
DONE = (TrialState.COMPLETE, TrialState.FAIL)  # a diverged run is a result, not a retry


@dataclass(frozen=True)
class RunRecord:
    """One finished run."""

    key: str
    state: str  # COMPLETE | FAIL (diverged)
    value: float | None  # final validation accuracy; None when diverged
    config: dict[str, Any]
    attrs: dict[str, Any]  # curves, diagnostics, grid (see hpo.claims.run)

    @property
    def diverged(self) -> bool:
        return self.state != "COMPLETE"

    def get(self, key: str) -> Any:
        """A config value, else an attr, else None."""
        return self.config.get(key, self.attrs.get(key))


@dataclass(frozen=True)
class ClaimRuns:
    name: str
    study_name: str
    study_id: int
    size: str
    runs: list[RunRecord]  # in trial-number order
    points: list[list[float]] = field(default_factory=list)  # [x, y, label], if stored

    def where(self, **values: Any) -> list[RunRecord]:
        """The runs whose config has all of `values`."""
        return [r for r in self.runs if all(r.config.get(k) == v for k, v in values.items())]


def done_keys(study: optuna.Study) -> set[str]:
    """The keys of the runs a study already holds."""
    return {
        t.user_attrs[RUN_ATTR]
        for t in study.get_trials(deepcopy=False, states=DONE)
        if RUN_ATTR in t.user_attrs
    }


def load_claims(storage: optuna.storages.BaseStorage, size: str) -> list[ClaimRuns]:
    """Every claims study of `size`, in the order they were created (study id)."""
    summaries = [
        s
        for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
        if CLAIM_ATTR in s.user_attrs and s.user_attrs.get(SIZE_ATTR) == size
    ]
    if not summaries:
        url = getattr(storage, "url", "the storage")
        raise HpoError(
            f"no claims studies of size {size} in {mask_url(url)}; run `hpo claims` first"
            + (" (with --size quick)" if size == "quick" else "")
        )
    out = []
    for s in sorted(summaries, key=study_id):
        study = optuna.load_study(study_name=s.study_name, storage=storage)
        trials = sorted(study.get_trials(deepcopy=False, states=DONE), key=lambda t: t.number)
        runs = [
            RunRecord(
                key=t.user_attrs.get(RUN_ATTR, str(t.number)),
                state=t.state.name,
                value=t.value if t.value is not None and math.isfinite(t.value) else None,
                config=dict(t.user_attrs.get(CONFIG_ATTR, {})),
                attrs=dict(t.user_attrs),
            )
            for t in trials
        ]
        out.append(
            ClaimRuns(
                name=s.user_attrs[CLAIM_ATTR],
                study_name=s.study_name,
                study_id=study_id(s),
                size=size,
                runs=runs,
                points=list(s.user_attrs.get(POINTS_ATTR, [])),
            )
        )
    return out
