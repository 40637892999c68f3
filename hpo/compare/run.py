"""Running a comparison: derive one study per (sampler, seed) from a study file, run them.

The studies are derived from one study file with only the sampler's name and seed
changed, so data split, training budget, pruner, search space and trial budget are
identical. Running is resumable for free: `open_study` only tops up what is missing, and
finished studies are skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import optuna

from hpo.compare.load import GROUP_ATTR, SAMPLER_ATTR, SEED_ATTR
from hpo.errors import HpoError
from hpo.launch import WorkerPlan, run_local_workers
from hpo.progress import StudyProgress, progress_of
from hpo.records import budget_of
from hpo.samplers import SAMPLERS
from hpo.spec import SamplerSpec, StudySpec, spec_from_dict
from hpo.study import open_study


@dataclass(frozen=True)
class Arm:
    """One study of a comparison."""

    group: str  # the comparison: the study file's study name
    sampler: str
    seed: int  # seed index within the group; the sampler seed is base seed + this
    spec: StudySpec


@dataclass(frozen=True)
class ComparisonPlan:
    """What `hpo compare FILE` runs: every arm, and the trial budget of each study."""

    group: str
    samplers: list[str]
    seeds: int  # studies per sampler
    trials: int  # trial budget of each study
    arms: list[Arm]


def parse_samplers(text: str) -> list[str]:
    """'random,tpe' -> ['random', 'tpe']; HpoError on an unknown or repeated name."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise HpoError("--samplers is empty; give e.g. random,tpe")
    for name in names:
        if name not in SAMPLERS:
            raise HpoError(
                f"unknown sampler {name!r} in --samplers; choose from: {', '.join(SAMPLERS)}"
            )
    if len(set(names)) != len(names):
        raise HpoError(f"--samplers repeats a name: {text}")
    return names


def study_name(group: str, sampler: str, seed: int) -> str:
    return f"{group}-{sampler}-s{seed}"


def derive_arms(spec: StudySpec, samplers: Sequence[str], seeds: int) -> list[Arm]:
    """One spec per (seed, sampler), seeds outermost so a partial run stays balanced.

    Sampler options of the file (e.g. TPE's n_startup_trials) go only to the sampler they
    were written for: other samplers do not accept them.
    """
    if seeds < 1:
        raise HpoError(f"--seeds must be >= 1, got {seeds}")
    arms = []
    for seed in range(seeds):
        for sampler in samplers:
            options = dict(spec.sampler.options) if sampler == spec.sampler.name else {}
            derived = dataclasses.replace(
                spec,
                name=study_name(spec.name, sampler, seed),
                sampler=SamplerSpec(sampler, spec.sampler.seed + seed, options),
            )
            # Round-trip through the validator: the derived spec is what workers rebuild.
            derived = spec_from_dict(derived.to_dict(), source=f"derived spec {derived.name}")
            arms.append(Arm(spec.name, sampler, seed, derived))
    return arms


def plan_comparison(
    spec: StudySpec, samplers: str, *, seeds: int, trials: int | None
) -> ComparisonPlan:
    """Check the options (`samplers` as given on the command line) and derive the arms."""
    names = parse_samplers(samplers)
    arms = derive_arms(spec, names, seeds)
    budget = trials if trials is not None else spec.trials
    if budget < 1:
        raise HpoError(f"--trials must be >= 1, got {budget}")
    return ComparisonPlan(spec.name, names, seeds, budget, arms)


@dataclass
class ComparisonProgress:
    """Per-sampler trials done and best value so far, fed by the running studies."""

    direction: str
    budget: dict[str, int]  # sampler -> trials in all its studies
    done: dict[str, dict[str, int]] = field(default_factory=dict)  # sampler -> study -> n
    best: dict[str, dict[str, float]] = field(default_factory=dict)  # sampler -> study -> best

    def update(self, arm: Arm, finished: int, best: float | None) -> None:
        self.done.setdefault(arm.sampler, {})[arm.spec.name] = finished
        if best is not None:
            self.best.setdefault(arm.sampler, {})[arm.spec.name] = best

    def rows(self) -> list[tuple[str, int, int, float | None]]:
        """(sampler, trials done, trials budget, best over its studies)."""
        pick = max if self.direction == "maximize" else min
        out = []
        for sampler, budget in self.budget.items():
            bests = list(self.best.get(sampler, {}).values())
            done = sum(self.done.get(sampler, {}).values())
            out.append((sampler, done, budget, pick(bests) if bests else None))
        return out


def run_comparison(
    storage: optuna.storages.RDBStorage,
    storage_url: str,
    arms: Sequence[Arm],
    plans: list[WorkerPlan],
    *,
    trials: int,
    data_dir: str | None = None,
    on_progress: Callable[[ComparisonProgress, Arm], None] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> list[int]:
    """Create or resume every arm's study and run the unfinished ones; returns exit codes.

    `extra_env` reaches every worker process (heartbeat, artifact folder), as for a launch.
    """
    direction = arms[0].spec.direction
    budget: dict[str, int] = {}
    for arm in arms:
        budget[arm.sampler] = budget.get(arm.sampler, 0) + trials
    progress = ComparisonProgress(direction, budget)
    studies = []
    for arm in arms:  # create all first: `hpo report` sees the whole group from the start
        study = open_study(storage, arm.spec, trials=trials)
        for key, value in (
            (GROUP_ATTR, arm.group),
            (SAMPLER_ATTR, arm.sampler),
            (SEED_ATTR, arm.seed),
        ):
            if study.user_attrs.get(key) != value:
                study.set_user_attr(key, value)
        now = progress_of(study)
        progress.update(arm, now.finished, now.best)
        studies.append(study)
    codes: list[int] = []
    for arm, study in zip(arms, studies, strict=True):
        if budget_of(study).done:
            continue  # resumed run: nothing queued, no need to start workers

        def report(now: StudyProgress, arm: Arm = arm) -> None:
            progress.update(arm, now.finished, now.best)
            if on_progress is not None:
                on_progress(progress, arm)

        codes += run_local_workers(
            study, storage_url, plans, data_dir=data_dir, on_progress=report, extra_env=extra_env
        )
    return codes
