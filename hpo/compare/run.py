"""Running a comparison: derive one study per (arm, seed) from a study file, run them.

An *arm* is what a user chooses between: a sampler, optionally with a pruner
(`tpe+hyperband`). The studies are derived from one study file with only the sampler, its
seed and (for `SAMPLER+PRUNER` arms) the pruner changed, so data split, training budget,
search space and trial budget are identical. Running is resumable for free: `open_study`
only tops up what is missing, and finished studies are skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import optuna

from hpo.compare.load import ARM_ATTR, GROUP_ATTR, PRUNER_ATTR, SAMPLER_ATTR, SEED_ATTR
from hpo.config.spec import PrunerSpec, SamplerSpec, StudySpec, spec_from_dict
from hpo.config.vocabulary import PRUNERS, SAMPLERS
from hpo.errors import HpoError
from hpo.runtime.launch import WorkerPlan, run_local_workers
from hpo.study.create import open_study
from hpo.study.progress import StudyProgress, progress_of
from hpo.study.records import budget_of
from hpo.study.samplers import check_options

DEFAULT_ARMS = "random,tpe"  # today's comparison: both with the study file's pruner
ARM_JOIN = "+"  # sampler+pruner; neither name contains it, and it is legal in study names


@dataclass(frozen=True)
class ArmChoice:
    """One entry of `--arms`: a sampler, and the pruner it runs with."""

    label: str  # as written: `tpe` or `tpe+hyperband`; names the studies and the report rows
    sampler: str
    pruner: str | None  # None: the study file's pruner


@dataclass(frozen=True)
class Arm:
    """One study of a comparison."""

    group: str  # the comparison: the study file's study name
    label: str  # the arm: `tpe`, `tpe+hyperband`
    sampler: str
    pruner: str  # resolved: the study file's pruner for arms without `+PRUNER`
    seed: int  # seed index within the group; the sampler seed is base seed + this
    spec: StudySpec


@dataclass(frozen=True)
class ComparisonPlan:
    """What `hpo compare FILE` runs: every arm, and the trial budget of each study."""

    group: str
    labels: list[str]  # the arms' labels, in the order given
    seeds: int  # studies per arm
    trials: int  # trial budget of each study
    arms: list[Arm]  # one per (seed, arm)


def parse_arms(text: str, option: str = "--arms") -> list[ArmChoice]:
    """'random,tpe+hyperband' -> arms; HpoError on an unknown name or a repeated arm."""
    labels = [n.strip() for n in text.split(",") if n.strip()]
    if not labels:
        raise HpoError(f"{option} is empty; give e.g. random,tpe or random,tpe+hyperband")
    choices = []
    for label in labels:
        sampler, _, pruner = (p.strip() for p in label.partition(ARM_JOIN))
        if sampler not in SAMPLERS:
            raise HpoError(
                f"unknown sampler {sampler!r} in {option} arm {label!r}; "
                f"choose from: {', '.join(SAMPLERS)} (optionally +PRUNER)"
            )
        if ARM_JOIN in label and pruner not in PRUNERS:
            raise HpoError(
                f"unknown pruner {pruner!r} in {option} arm {label!r}; "
                f"choose from: {', '.join(PRUNERS)}"
            )
        # Spaces around '+' are dropped: the label names studies and folders.
        canonical = f"{sampler}{ARM_JOIN}{pruner}" if ARM_JOIN in label else sampler
        choices.append(ArmChoice(canonical, sampler, pruner if ARM_JOIN in label else None))
    if len({c.label for c in choices}) != len(choices):
        raise HpoError(f"{option} repeats a name: {text}")
    return choices


def study_name(group: str, arm: str, seed: int) -> str:
    return f"{group}-{arm}-s{seed}"


def resolve_pruner(choice: ArmChoice, spec: StudySpec) -> str:
    return spec.pruner.name if choice.pruner is None else choice.pruner


def derive_arms(spec: StudySpec, arms: Sequence[str | ArmChoice], seeds: int) -> list[Arm]:
    """One spec per (seed, arm), seeds outermost so a partial run stays balanced.

    `arms` are ArmChoices or plain sampler names. Sampler options of the file (e.g. TPE's
    n_startup_trials) go only to the sampler they were written for, pruner options only to
    the pruner: other samplers and pruners do not accept them. Two arms that resolve to
    the same sampler and pruner (`tpe` and `tpe+median` when the file's pruner is median)
    are refused: they would be one experiment run twice under two names.
    """
    if seeds < 1:
        raise HpoError(f"--seeds must be >= 1, got {seeds}")
    choices = [a if isinstance(a, ArmChoice) else ArmChoice(a, a, None) for a in arms]
    resolved: dict[tuple[str, str], str] = {}
    for choice in choices:
        key = (choice.sampler, resolve_pruner(choice, spec))
        if key in resolved:
            raise HpoError(
                f"arms {resolved[key]!r} and {choice.label!r} are the same: sampler "
                f"{key[0]} with pruner {key[1]} (the study file's pruner is {spec.pruner.name})"
            )
        resolved[key] = choice.label
    out = []
    for seed in range(seeds):
        for choice in choices:
            sampler, pruner = choice.sampler, resolve_pruner(choice, spec)
            sampler_options = dict(spec.sampler.options) if sampler == spec.sampler.name else {}
            pruner_options = dict(spec.pruner.options) if pruner == spec.pruner.name else {}
            derived = dataclasses.replace(
                spec,
                name=study_name(spec.name, choice.label, seed),
                sampler=SamplerSpec(sampler, spec.sampler.seed + seed, sampler_options),
                pruner=PrunerSpec(pruner, pruner_options),
            )
            # Round-trip through the validator: the derived spec is what workers rebuild.
            source = f"derived spec {derived.name}"
            derived = check_options(spec_from_dict(derived.to_dict(), source=source), source=source)
            out.append(Arm(spec.name, choice.label, sampler, pruner, seed, derived))
    return out


def plan_comparison(
    spec: StudySpec, arms: str, *, seeds: int, trials: int | None, option: str = "--arms"
) -> ComparisonPlan:
    """Check the options (`arms` as given on the command line) and derive the studies."""
    choices = parse_arms(arms, option)
    derived = derive_arms(spec, choices, seeds)
    budget = trials if trials is not None else spec.trials
    if budget < 1:
        raise HpoError(f"--trials must be >= 1, got {budget}")
    return ComparisonPlan(spec.name, [c.label for c in choices], seeds, budget, derived)


@dataclass
class ComparisonProgress:
    """Per-arm trials done and best value so far, fed by the running studies."""

    direction: str
    budget: dict[str, int]  # arm label -> trials in all its studies
    done: dict[str, dict[str, int]] = field(default_factory=dict)  # arm -> study -> n
    best: dict[str, dict[str, float]] = field(default_factory=dict)  # arm -> study -> best

    def update(self, arm: Arm, finished: int, best: float | None) -> None:
        self.done.setdefault(arm.label, {})[arm.spec.name] = finished
        if best is not None:
            self.best.setdefault(arm.label, {})[arm.spec.name] = best

    def rows(self) -> list[tuple[str, int, int, float | None]]:
        """(arm, trials done, trials budget, best over its studies)."""
        pick = max if self.direction == "maximize" else min
        out = []
        for label, budget in self.budget.items():
            bests = list(self.best.get(label, {}).values())
            done = sum(self.done.get(label, {}).values())
            out.append((label, done, budget, pick(bests) if bests else None))
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
        budget[arm.label] = budget.get(arm.label, 0) + trials
    progress = ComparisonProgress(direction, budget)
    studies = []
    for arm in arms:  # create all first: `hpo report` sees the whole group from the start
        study = open_study(storage, arm.spec, trials=trials)
        for key, value in (
            (GROUP_ATTR, arm.group),
            (SAMPLER_ATTR, arm.sampler),
            (PRUNER_ATTR, arm.pruner),
            (ARM_ATTR, arm.label),
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
