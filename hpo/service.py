"""What each command does, as one call: the CLI parses options and prints, this runs.

Every user error is raised as an HpoError with one line that says what is wrong and how
to fix it, before anything is written to the storage where that can be checked first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hpo.config.settings import Settings
from hpo.errors import HpoError
from hpo.storage.open import connect
from hpo.storage.urls import mask_url

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from hpo.config.spec import StudySpec
    from hpo.runtime.launch import ProgressCallback, WorkerPlan
    from hpo.study.summary import StudySummary

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
    from hpo.study.samplers import check_options

    spec = check_options(load_spec(file), source=file)  # before torch loads: a typo is cheap
    if name:
        spec = renamed(spec, name)

    from hpo.runtime.devices import parse_gpus, visible_gpus
    from hpo.runtime.launch import plan_workers, run_workers
    from hpo.runtime.worker import load_study_data
    from hpo.study.create import open_study
    from hpo.study.summary import summarize
    from hpo.training.loop import num_outputs
    from hpo.training.memory import largest_config_warning

    selected = parse_gpus(gpus, visible_gpus()) if workers else []
    plans = plan_workers(workers, selected, per_gpu=workers_per_gpu) if workers else []
    if plans:  # a create-only launch (docker compose) needs no data
        data = load_study_data(spec, data_dir)  # fails before the storage is touched
        device = "cpu" if plans[0].gpu is None else f"cuda:{plans[0].gpu}"
        warning = largest_config_warning(spec, data.in_shape, num_outputs(data.num_classes), device)
        if warning and on_warning is not None:
            on_warning(warning)
    started = time.perf_counter()
    storage = connect(settings)
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
    storage = connect(settings)
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


def write_kubernetes(
    file: str,
    *,
    out: str | None,
    workers: int,
    image: str,
    gpus_per_worker: int,
    workers_per_gpu: int,
    name: str | None,
    trials: int | None,
    namespace: str,
    database: str,
    force: bool,
) -> list[Path]:
    """`hpo k8s`: check the study file as a launch would, then write its manifests."""
    from hpo.config.spec import load_spec, renamed
    from hpo.runtime.kubernetes import write_study_manifests
    from hpo.study.samplers import check_options

    spec = check_options(load_spec(file), source=file)
    if name:
        renamed(spec, name)  # the name is checked as a study file's would be
    return write_study_manifests(
        file,
        out,
        workers=workers,
        image=image,
        gpus_per_worker=gpus_per_worker,
        workers_per_gpu=workers_per_gpu,
        name=name,
        trials=trials,
        namespace=namespace,
        database=database,
        force=force,
    )


def shown(settings: Settings) -> str:
    """The storage URL with its password masked, for output."""

    return mask_url(settings.storage_url)


def list_studies(settings: Settings) -> list[StudySummary]:
    """`hpo studies`: every study in the storage, as plain data."""
    from hpo.study.summary import summarize_storage

    return summarize_storage(connect(settings))


def serve_dashboard(settings: Settings, *, host: str, port: int) -> None:
    """`hpo dashboard`: optuna-dashboard on the storage and its artifact store, until stopped."""
    from hpo.report.dashboard import serve

    serve(connect(settings), host=host, port=port, artifact_dir=settings.artifacts)


def serve_proxy(
    settings: Settings, *, host: str, port: int, threads: int, on_ready: Callable[[str], None]
) -> None:
    """`hpo proxy`: the storage proxy in front of the database, serving the study layer's
    locked operations, until SIGTERM / Ctrl-C."""
    from hpo.storage.proxy_server import serve_proxy as serve
    from hpo.study.create import LOCKED_CALLS

    serve(
        settings.storage_url,
        host=host,
        port=port,
        threads=threads,
        heartbeat_interval=settings.heartbeat_interval,
        calls=LOCKED_CALLS,
        on_ready=on_ready,
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

    storage = connect(settings)
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
        raise HpoError(
            f"no study named {study_name!r} in {mask_url(settings.storage_url)} "
            f"(studies there: {', '.join(names) or 'none'})"
        ) from None
