"""Replaying one arm's study against a recorded table, on a simulated clock.

The arm's real Optuna sampler and pruner run on an in-memory storage; nothing trains.
W asynchronous workers are simulated in event order, as Syne Tune's simulator backend and
optunahub's asynchronous-optimization simulator do:

- a worker that frees up at simulated time t asks for a trial at once (Optuna's ask), so
  the sampler sees exactly the trials told by t; the others are RUNNING, as they would be;
- the trial's params are looked up in the table (hpo.compare.table, the lookup rule) and a
  repeat is drawn uniformly from the arm's seed;
- each recorded epoch is an event at start + the recorded seconds so far: the trial reports
  that epoch's value then, and the pruner decides then, on the real curves of what the
  other trials had reported by that time;
- the trial is told (COMPLETE after its last epoch, PRUNED when the pruner says so) at its
  finish event, and its worker asks for the next trial.

Events at the same time are taken in the order they were scheduled, so the same table,
arm, seed and worker count give the same trials, byte for byte.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from hpo.compare.table import Run, Table, draw_run
from hpo.config.spec import StudySpec
from hpo.study.samplers import build_pruner, build_sampler
from hpo.study.space import suggest_params

REPEAT_STREAM = 21  # the repeat draws' stream, apart from the sampler's own seed


@dataclass(frozen=True)
class SimTrial:
    """One finished replayed trial."""

    number: int
    state: str  # COMPLETE | PRUNED | FAIL
    value: float | None  # the last reported metric (for a pruned trial too)
    compute: float  # recorded seconds of the epochs it ran
    start: float  # simulated seconds since the study began
    finish: float
    epochs: int  # epochs it ran
    config_id: int
    repeat: int
    params: dict[str, Any]


@dataclass
class _Running:
    trial: optuna.Trial
    run: Run
    start: float
    config_id: int
    repeat: int
    params: dict[str, Any]
    epoch: int = 0  # epochs reported so far
    compute: float = 0.0


def replay_study(
    table: Table,
    lookup: Callable[[Mapping[str, Any]], int],
    spec: StudySpec,
    *,
    trials: int,
    workers: int = 1,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> list[SimTrial]:
    """Replay one study of `spec` (its sampler, seed and pruner) for `trials` trials on
    `workers` simulated workers; the finished trials in finishing order.

    `sampler` and `pruner` replace the spec's (tests watch what they see).
    """
    if sampler is None:
        sampler = build_sampler(
            spec.sampler.name, seed=spec.sampler.seed, options=spec.sampler.options
        )
    if pruner is None:
        pruner = build_pruner(
            spec.pruner.name, max_epochs=spec.train.epochs, options=spec.pruner.options
        )
    rng = np.random.default_rng([spec.sampler.seed, REPEAT_STREAM])
    events: list[tuple[float, int, int]] = []  # (simulated time, order, trial number)
    running: dict[int, _Running] = {}
    done: list[SimTrial] = []
    order = 0
    asked = 0

    def start(now: float) -> None:
        nonlocal order, asked
        trial = study.ask()
        asked += 1
        params = suggest_params(trial, spec.space)
        config_id = lookup(params)
        repeat, run = draw_run(table, config_id, rng)
        running[trial.number] = _Running(trial, run, now, config_id, repeat, params)
        heapq.heappush(events, (now + run.seconds[0], order, trial.number))
        order += 1

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # thousands of "Trial N finished"
    try:
        study = optuna.create_study(
            # Named: Hyperband assigns trials to brackets by a hash of study name and number.
            study_name=spec.name,
            storage=optuna.storages.InMemoryStorage(),
            sampler=sampler,
            pruner=pruner,
            direction=spec.direction,
        )
        for _ in range(min(workers, trials)):
            start(0.0)
        while events:
            now, _, number = heapq.heappop(events)
            r = running[number]
            value = r.run.values[r.epoch]
            r.compute += r.run.seconds[r.epoch]
            r.epoch += 1
            state: TrialState | None = None
            if not math.isfinite(value):
                state = TrialState.FAIL  # a diverged run: the live objective fails it too
            else:
                r.trial.report(value, r.epoch)
                if r.trial.should_prune():
                    state = TrialState.PRUNED
                elif r.epoch == len(r.run.values):
                    state = TrialState.COMPLETE
            if state is None:
                heapq.heappush(events, (now + r.run.seconds[r.epoch], order, number))
                order += 1
                continue
            if state == TrialState.COMPLETE:
                study.tell(r.trial, value)
            else:
                study.tell(r.trial, state=state)
            del running[number]
            done.append(
                SimTrial(
                    number,
                    state.name,
                    value if math.isfinite(value) else None,
                    r.compute,
                    r.start,
                    now,
                    r.epoch,
                    r.config_id,
                    r.repeat,
                    r.params,
                )
            )
            if asked < trials:
                start(now)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return done
