"""What hpo keeps in a study besides Optuna's own records, and how its trials count.

Torch-free and spec-free, so that listing studies (`hpo studies`, `hpo best`) and
progress reporting load only Optuna.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo.errors import HpoError

SPEC_ATTR = "hpo_spec"  # study user attr: the validated spec, as JSON-able dict
BUDGET_ATTR = "hpo_trials"  # study user attr: the study-wide trial budget
# Study user attr: when workers stop taking trials, in UTC epoch seconds (null: never). Set
# from [study] timeout when the study is created, and again when a launch changes timeout.
DEADLINE_ATTR = "hpo_deadline"
# Study user attr: the known configurations ([[enqueue]], `hpo enqueue`): {"keys": a key per
# configuration ever accepted, so none is queued twice; "pending": those not queued yet}.
KNOWN_ATTR = "hpo_known"
# Study user attr of a study with [study] stop_after: {"best": best value so far, "streak":
# finished trials since the last one that improved on it by more than min_delta}.
PLATEAU_ATTR = "hpo_plateau"
# Study user attr: why the study stopped before its budget ({"reason", "trial", "at"}), or
# null (never stopped, or resumed with `hpo launch study --resume-stopped`).
STOPPED_ATTR = "hpo_stopped"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
WORKER_ATTR = "worker"  # trial user attr: the process that ran it, as heartbeats.worker_name() says


@dataclass(frozen=True)
class Budget:
    """Where a study stands against its trial budget (superseded attempts left out)."""

    target: int
    states: Counter[TrialState]

    @property
    def finished(self) -> int:
        return sum(self.states[s] for s in FINISHED)

    @property
    def unqueued(self) -> int:
        """Budget not queued yet (hpo.study.create queues it a few trials at a time)."""
        return max(0, self.target - sum(self.states.values()))

    @property
    def pending(self) -> int:
        """Trials still to finish: queued, running, and budget not queued yet."""
        return self.states[TrialState.WAITING] + self.states[TrialState.RUNNING] + self.unqueued

    @property
    def done(self) -> bool:
        return self.pending == 0


def stored_budget(study_name: str, attrs: Mapping[str, Any]) -> int:
    """The budget stored with a study (0 if none); one line, not a traceback, when what is
    stored there is not a count (edited by hand, written by something else)."""
    budget = attrs.get(BUDGET_ATTR, 0)
    if isinstance(budget, int) and not isinstance(budget, bool) and budget >= 0:
        return budget
    raise HpoError(
        f"study {study_name!r} has a corrupt budget ({BUDGET_ATTR} = {budget!r}, not a count "
        "of trials); relaunch it with `hpo launch study FILE --trials N` to store one again"
    )


def stop_reason(attrs: Mapping[str, Any]) -> str | None:
    """Why the study stopped early, as `hpo studies` shows it; None if it has not."""
    stopped = attrs.get(STOPPED_ATTR)
    if not isinstance(stopped, dict):
        return None
    return f"stopped: {stopped.get('reason', 'for an unknown reason')}"


def superseded_numbers(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of failed attempts that were re-queued (their retry counts instead)."""
    numbers: set[int] = set()
    for trial in trials:
        numbers.update(trial.system_attrs.get("retry_history", []))
    return numbers


def counted_trials(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that count against the budget: all but superseded attempts."""
    superseded = superseded_numbers(trials)
    return [t for t in trials if t.number not in superseded]


def budget_of(study: optuna.Study) -> Budget:
    trials = study.get_trials(deepcopy=False)
    target = stored_budget(study.study_name, study.user_attrs)
    return Budget(target, Counter(t.state for t in counted_trials(trials)))


# Per-trial layer diagnostics (hpo.training.diagnostics) are user attrs named diag_{phase}_{stat}.
DIAG_PREFIX = "diag_"


def diag_attr(phase: str, stat: str) -> str:
    """The user attr of one diagnostic, e.g. diag_attr("init", "act_std")."""
    return f"{DIAG_PREFIX}{phase}_{stat}"
