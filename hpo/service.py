"""What each command does, as one call: the CLI parses options and prints, this runs.

Every user error is raised as an HpoError with one line that says what is wrong and how
to fix it, before anything is written to the storage where that can be checked first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hpo.config.settings import Settings
from hpo.errors import HpoError

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from hpo.config.spec import StudySpec
    from hpo.runtime.launch import ProgressCallback, WorkerPlan
    from hpo.study.summary import StudySummary
    from hpo.training.data import Dataset

log = logging.getLogger("hpo.service")


@dataclass(frozen=True)
class LaunchOutcome:
    """How `hpo launch study` ended."""

    name: str  # the study's name
    summary: StudySummary | None  # None: the study was only created (--workers 0)
    seconds: float  # wall time of the launch
    exit_codes: tuple[int, ...] = ()  # of the worker processes (0 for an in-process worker)

    def raise_for_failures(self) -> None:
        """One line and a non-zero exit when workers failed or no trial completed."""
        from hpo.runtime.launch import check_exit_codes

        check_exit_codes(self.exit_codes)
        if self.summary is not None and self.summary.best is None:
            raise HpoError(
                f"study {self.name!r} ended with no completed trial (every trial failed or was "
                "pruned); the fail_reason user attr of each trial says why (optuna-dashboard, "
                "or `hpo studies`)"
            )


def launch_study(
    settings: Settings,
    file: str,
    *,
    trials: int | None = None,
    workers: int = 1,
    gpus: str = "none",
    workers_per_gpu: int = 1,
    name: str | None = None,
    data_dir: str | None = None,
    on_start: Callable[[StudySpec, list[WorkerPlan], optuna.Study], None] | None = None,
    on_progress: ProgressCallback | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> LaunchOutcome:
    """Create or resume the study of `file`, run local workers until its budget is done."""
    from hpo.config.spec import load_spec, renamed
    from hpo.runtime.devices import parse_gpus, visible_gpus
    from hpo.runtime.launch import plan_workers, run_workers
    from hpo.study.create import open_study
    from hpo.study.summary import summarize
    from hpo.training.loop import num_outputs
    from hpo.training.memory import largest_config_warning

    spec = load_spec(file)
    if name:
        spec = renamed(spec, name)
    selected = parse_gpus(gpus, visible_gpus()) if workers else []
    plans = plan_workers(workers, selected, per_gpu=workers_per_gpu) if workers else []
    if plans:  # a create-only launch (docker compose) needs no data
        data = check_data(spec, data_dir)
        device = "cpu" if plans[0].gpu is None else f"cuda:{plans[0].gpu}"
        warning = largest_config_warning(spec, data.in_shape, num_outputs(data.num_classes), device)
        if warning and on_warning is not None:
            on_warning(warning)
    started = time.perf_counter()
    storage = settings.open()
    study = open_study(storage, spec, trials=trials)
    if not plans:
        return LaunchOutcome(spec.name, None, time.perf_counter() - started)
    if on_start is not None:
        on_start(spec, plans, study)
    codes = run_workers(study, storage, settings, plans, data_dir=data_dir, on_progress=on_progress)
    return LaunchOutcome(spec.name, summarize(study), time.perf_counter() - started, tuple(codes))


def join_study(
    settings: Settings,
    study_name: str,
    *,
    gpus: str = "all",
    workers_per_gpu: int = 1,
    worker_index: int | None = None,
    data_dir: str | None = None,
) -> None:
    """`hpo worker`: run queued trials of an existing study on this machine until none is
    left. Several GPUs (or several workers per GPU) get a process each; otherwise the
    worker runs in this process, and a stop request ends it with exit 0."""
    from hpo.runtime.devices import parse_gpus, visible_gpus
    from hpo.runtime.launch import (
        check_exit_codes,
        default_worker_index,
        plan_workers,
        run_in_process,
        run_local_workers,
    )
    from hpo.study.create import load_spec_from_storage

    selected = parse_gpus(gpus, visible_gpus())
    first_index = default_worker_index() if worker_index is None else worker_index
    storage = settings.open()
    load_spec_from_storage(storage, study_name)  # fail fast, listing the studies, if absent
    if len(selected) > 1 or workers_per_gpu > 1:
        import optuna

        study = optuna.load_study(study_name=study_name, storage=storage)
        plans = plan_workers(0, selected, per_gpu=workers_per_gpu, first_index=first_index)
        codes = run_local_workers(
            study, settings.storage_url, plans, data_dir=data_dir, extra_env=settings.worker_env()
        )
        check_exit_codes(codes)
        return
    device = f"cuda:{selected[0]}" if selected else "cpu"
    report = run_in_process(
        storage,
        study_name,
        settings,
        device=device,
        worker_index=first_index,
        data_dir=data_dir,
    )
    states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(report.states.items())) or "none"
    log.info(
        "worker %d done: %d trial(s) (%s) in %.1f s%s",
        first_index,
        report.trials,
        states,
        report.seconds,
        " (stopped on request)" if report.stopped else "",
    )


def best_of(settings: Settings, study_name: str) -> tuple[optuna.Study, FrozenTrial]:
    """The study and its best trial; one line if either does not exist."""
    from hpo.study.summary import best_trial

    study = load_study(settings, study_name)
    trial = best_trial(study)
    if trial is None:
        raise HpoError(f"study {study_name!r} has no completed trial yet")
    return study, trial


def load_study(settings: Settings, study_name: str) -> optuna.Study:
    """An existing study by name; one line listing the studies there if it is absent."""
    import optuna

    storage = settings.open()
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
        raise HpoError(
            f"no study named {study_name!r} in {settings.shown} "
            f"(studies there: {', '.join(names) or 'none'})"
        ) from None


def check_data(spec: StudySpec, data_dir: str | None) -> Dataset:
    """The study's data set; fails before the storage is touched when it cannot be loaded."""
    from hpo.runtime.worker import load_study_data

    return load_study_data(spec, data_dir)
