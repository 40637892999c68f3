"""What happens to the trial of a worker that died: re-queued, at most MAX_RETRY times."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

MAX_RETRY = 3  # how often a trial whose worker died is re-queued before it stays failed


class StaleTrialRetry:
    """Re-queue the trial of a dead worker (no heartbeat), at most `max_retry` times.

    Optuna's RetryHeartbeatStaleTrialCallback does the re-queueing; past the cap it leaves
    the last attempt failed without a word, and a finished trial takes no more attrs. So
    here a failed record of the same params supersedes that attempt (it lists it in its
    `retry_history`, so the budget counts the record instead) and says why in fail_reason.
    """

    def __init__(self, *, max_retry: int) -> None:
        self.max_retry = max_retry

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        attempts = [*trial.system_attrs.get("retry_history", []), trial.number]
        if len(attempts) <= self.max_retry:
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=self.max_retry)(study, trial)
            return
        reason = (
            f"worker died; these params ran {len(attempts)} times without finishing "
            f"(trials {', '.join(map(str, attempts))}): not retried again"
        )
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.FAIL,
                params=trial.params,
                distributions=trial.distributions,
                user_attrs={**trial.user_attrs, "fail_reason": reason},
                system_attrs={
                    "failed_trial": attempts[0],
                    **trial.system_attrs,
                    "retry_history": attempts,
                },
            )
        )
