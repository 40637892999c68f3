"""What each command does, as one call: the CLI parses options and prints, this runs.

Every user error is raised as an HpoError with one line that says what is wrong and how
to fix it, before anything is written to the storage where that can be checked first.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hpo.config.settings import Settings
from hpo.errors import HpoError
from hpo.runtime.artifacts import check_artifacts
from hpo.storage.open import connect
from hpo.storage.urls import mask_url

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from hpo.config.spec import StudySpec
    from hpo.runtime.launch import ProgressCallback, WorkerPlan
    from hpo.runtime.slurm import SlurmOptions
    from hpo.study.summary import StudySummary
    from hpo.training.data import Dataset
    from hpo.training.retrain import Retrained

log = logging.getLogger("hpo.service")


@dataclass(frozen=True)
class LaunchOutcome:
    """How `hpo launch study` ended."""

    name: str  # the study's name
    summary: StudySummary | None  # None: the study was only created (--workers 0)
    seconds: float  # wall time of the launch
    exit_codes: tuple[int, ...] = ()  # of the worker processes (0 for an in-process worker)
    job_id: str | None = None  # the Slurm array that runs the workers (--slurm)

    def raise_for_failures(self) -> None:
        """One line and a non-zero exit when workers failed or no trial completed."""
        from hpo.runtime.launch import check_exit_codes

        check_exit_codes(self.exit_codes)
        if self.summary is not None and self.summary.best is None and not self.summary.front:
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
    slurm: SlurmOptions | None = None,
    detach: bool = False,
    on_submitted: Callable[[str, Path], None] | None = None,
    resume_stopped: bool = False,
) -> LaunchOutcome:
    """Create or resume the study of `file`, run local workers until its budget is done
    (or the study stops improving: [study] stop_after).

    With `slurm`, the workers are the tasks of one Slurm job array instead (checked against
    the cluster before anything is written); `detach` returns once it is submitted. A study
    that stopped early is refused unless `resume_stopped`.
    """
    from hpo.config.spec import load_spec, renamed
    from hpo.config.vocabulary import USER_DATASETS
    from hpo.study.samplers import check_options

    spec = check_options(load_spec(file), source=file)  # before torch loads: a typo is cheap
    if name:
        spec = renamed(spec, name)
    if workers or slurm is not None:  # --workers 0 only creates the study: workers elsewhere
        check_artifacts(settings.artifacts)
    spec, checked_data = _own_network_checked(spec, data_dir, settings.artifacts)

    from hpo.runtime.dataid import check_data, record_data
    from hpo.runtime.devices import parse_gpus, visible_gpus
    from hpo.runtime.launch import plan_workers, run_workers
    from hpo.runtime.worker import load_study_data
    from hpo.study.create import open_study
    from hpo.study.summary import summarize
    from hpo.training.loop import num_outputs
    from hpo.training.memory import largest_config_warning

    def pending(count: int) -> None:
        if on_warning is not None:
            on_warning(
                f"{count} known configuration(s) ([[enqueue]], hpo enqueue) wait for budget: "
                "the study's budget ends before them; raise --trials to run them"
            )

    if slurm is not None:
        from hpo.runtime.slurm import preflight

        preflight(slurm, settings.storage_url)
        own = None  # a user's own data: read here too, before the study is created
        if spec.data.name in USER_DATASETS:
            own = checked_data or load_study_data(spec, data_dir, cache_dir=settings.artifacts)
        started = time.perf_counter()
        storage = connect(settings)
        if own is not None:
            check_data(storage, spec.name, own)
        study = open_study(
            storage,
            spec,
            trials=trials,
            resume_stopped=resume_stopped,
            on_pending=pending,
        )
        if own is not None:
            record_data(study, own)
        if on_start is not None:
            on_start(spec, plan_workers(slurm.workers, []), study)
        return _run_array(
            settings,
            study,
            slurm,
            started=started,
            worker_args=_worker_args(workers_per_gpu, data_dir),
            detach=detach,
            on_submitted=on_submitted,
            on_progress=on_progress,
        )
    selected = parse_gpus(gpus, visible_gpus()) if workers else []
    plans = plan_workers(workers, selected, per_gpu=workers_per_gpu) if workers else []
    data = checked_data  # an own network's check loaded it already
    # A create-only launch (docker compose) needs no built-in data; a user's own data is read
    # (checked, identified) before the storage is touched, whatever the launch.
    if data is None and (plans or spec.data.name in USER_DATASETS):
        data = load_study_data(spec, data_dir, cache_dir=settings.artifacts)
    if plans and data is not None:
        device = "cpu" if plans[0].gpu is None else f"cuda:{plans[0].gpu}"
        warning = largest_config_warning(spec, data.in_shape, num_outputs(data.num_classes), device)
        if warning and on_warning is not None:
            on_warning(warning)
    started = time.perf_counter()
    storage = connect(settings)
    if data is not None:
        check_data(storage, spec.name, data)  # other data under the same path: refused
    study = open_study(
        storage, spec, trials=trials, resume_stopped=resume_stopped, on_pending=pending
    )
    if data is not None:
        record_data(study, data)
    if not plans:
        return LaunchOutcome(spec.name, None, time.perf_counter() - started)
    if on_start is not None:
        on_start(spec, plans, study)
    codes = run_workers(study, storage, settings, plans, data_dir=data_dir, on_progress=on_progress)
    return LaunchOutcome(spec.name, summarize(study), time.perf_counter() - started, tuple(codes))


def _own_network_checked(
    spec: StudySpec, data_dir: str | None, cache_dir: Path
) -> tuple[StudySpec, Dataset | None]:
    """An own network ([model] entry) imported, its signature checked against the space,
    built once at the space's first point on the study's data shape, and its source hash
    recorded: every error is one line before the storage is touched. Returns the spec with
    the hash, and the data set it loaded (None for a built-in network)."""
    if spec.entry is None:
        return spec, None
    from hpo.runtime.worker import load_study_data
    from hpo.training.modelentry import check_build, with_source

    spec = with_source(spec)
    data = load_study_data(spec, data_dir, cache_dir=cache_dir)
    check_build(spec, data.in_shape, data.num_classes)
    return spec, data


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
    check_artifacts(settings.artifacts)
    storage = connect(settings)
    spec = load_spec_from_storage(storage, study_name)  # fail fast, listing the studies
    if spec.entry is not None:  # an own network: the code the study was launched with
        from hpo.training.modelentry import check_same_source

        check_same_source(spec)
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
    if report.stopped:  # exit 130, not 0: a scheduler restarts a worker that did not finish
        raise KeyboardInterrupt


def join_on_slurm(
    settings: Settings,
    study_name: str,
    slurm: SlurmOptions,
    *,
    workers_per_gpu: int = 1,
    data_dir: str | None = None,
    detach: bool = False,
    on_submitted: Callable[[str, Path], None] | None = None,
    on_progress: ProgressCallback | None = None,
) -> LaunchOutcome:
    """`hpo worker --slurm`: one Slurm array of workers for an existing study."""
    import optuna

    from hpo.runtime.slurm import preflight
    from hpo.study.create import load_spec_from_storage

    preflight(slurm, settings.storage_url)
    check_artifacts(settings.artifacts)
    started = time.perf_counter()
    storage = connect(settings)
    load_spec_from_storage(storage, study_name)  # one line listing the studies, if absent
    return _run_array(
        settings,
        optuna.load_study(study_name=study_name, storage=storage),
        slurm,
        started=started,
        worker_args=_worker_args(workers_per_gpu, data_dir),
        detach=detach,
        on_submitted=on_submitted,
        on_progress=on_progress,
    )


def _worker_args(workers_per_gpu: int, data_dir: str | None) -> list[str]:
    """The options of `hpo launch` / `hpo worker` that each Slurm task's worker takes too."""
    args = ["--workers-per-gpu", str(workers_per_gpu)]
    return [*args, "--data-dir", data_dir] if data_dir else args


def _run_array(
    settings: Settings,
    study: optuna.Study,
    options: SlurmOptions,
    *,
    started: float,
    worker_args: list[str],
    detach: bool,
    on_submitted: Callable[[str, Path], None] | None,
    on_progress: ProgressCallback | None,
) -> LaunchOutcome:
    """Submit the study's workers as one Slurm array; unless `detach`, follow the study's
    progress until every task has ended (Ctrl-C cancels the array)."""
    from hpo.runtime.slurm import follow_array, launch_array, unfinished_tasks
    from hpo.study.progress import progress_of
    from hpo.study.summary import summarize

    folder = Path(settings.artifacts) / "slurm"  # the batch scripts, kept for audit
    array = launch_array(
        study.study_name,
        options,
        settings.storage_url,
        worker_args=worker_args,
        log_dir=folder / "logs",
        script_dir=folder,
        env={**os.environ, **settings.worker_env()},
    )
    if on_submitted is not None:
        on_submitted(array.job_id, array.script)
    if detach:
        return LaunchOutcome(
            study.study_name, None, time.perf_counter() - started, (), array.job_id
        )
    show = (lambda: on_progress(progress_of(study))) if on_progress is not None else None
    states = follow_array(array, options.workers, on_poll=show)
    failed = unfinished_tasks(states)
    if failed:
        listed = ", ".join(f"{index} {state.lower()}" for index, state in failed.items())
        raise HpoError(
            f"{len(failed)} of {options.workers} task(s) of Slurm array {array.job_id} did "
            f"not complete ({listed}); their logs are in {folder / 'logs'}"
        )
    seconds = time.perf_counter() - started
    return LaunchOutcome(study.study_name, summarize(study), seconds, (), array.job_id)


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


EXAMPLE_PARAMS = '{"lr": 0.01, "depth": 2}'  # what --params takes, shown in its errors


@dataclass(frozen=True)
class Enqueued:
    """What `hpo enqueue` did."""

    given: int  # configurations on the command line
    added: int  # those new to the study (the others were given before)
    waiting: int  # known configurations the study's budget cannot hold yet
    stopped: str  # why the study stopped early ("": it has not): they run once resumed


def enqueue_params(settings: Settings, study_name: str, params: tuple[str, ...]) -> Enqueued:
    """`hpo enqueue`: known configurations (JSON objects) for a study to run next, checked
    against its space; one line for a bad one, before anything is written."""
    import json

    from hpo.study.create import enqueue

    configs = []
    for text in params:
        try:
            configs.append(json.loads(text))
        except json.JSONDecodeError as exc:
            shown = text if len(text) <= 60 else text[:57] + "..."
            raise HpoError(
                f"--params {shown!r} is not JSON ({exc.msg}, column {exc.colno}); give an "
                f"object of searched values, e.g. --params '{EXAMPLE_PARAMS}'"
            ) from None
    answer = enqueue(connect(settings), study_name, configs)
    return Enqueued(len(configs), int(answer["added"]), int(answer["waiting"]), answer["stopped"])


def serve_dashboard(
    settings: Settings,
    *,
    host: str,
    port: int,
    allow_hosts: tuple[str, ...] = (),
    token: str | None = None,
) -> None:
    """`hpo dashboard`: optuna-dashboard on the storage and its artifact store, until stopped;
    requests for other hosts, or without `token` when one is given, are refused."""
    from hpo.report.dashboard import serve

    serve(
        connect(settings),
        host=host,
        port=port,
        artifact_dir=settings.artifacts,
        allow_hosts=allow_hosts,
        token=token,
    )


def serve_proxy(
    settings: Settings,
    *,
    host: str,
    port: int,
    threads: int,
    on_ready: Callable[[str], None],
    tls_files: tuple[str, str, str | None] | None = None,
) -> None:
    """`hpo proxy`: the storage proxy in front of the database, serving the study layer's
    locked operations, until SIGTERM / Ctrl-C; over TLS with `tls_files` (certificate, key,
    and the CA of client certificates for mutual TLS, or None)."""
    from hpo.storage.proxy_server import ServerTls
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
        tls=ServerTls.read(*tls_files) if tls_files else None,
    )


def export_model(
    settings: Settings,
    study_name: str,
    *,
    out: str,
    trial: int | None = None,
    table_format: str = "csv",
    force: bool = False,
) -> tuple[FrozenTrial, list[Path]]:
    """`hpo export`: the kept weights of the best (or given) trial as a folder
    (model.pt, model.json, the trials table); the trial and the files written."""
    from hpo.study.front import front_marks
    from hpo.study.summary import chosen_trial
    from hpo.training.export import about_trial, check_out_dir, kept_model, write_export
    from hpo.training.modelfile import rebuild

    folder = Path(out)
    check_out_dir(folder, force=force)
    study = load_study(settings, study_name)
    chosen = chosen_trial(study, trial)
    record, state = kept_model(study, chosen, settings.artifacts)
    files = write_export(
        folder,
        rebuild(record, state),
        record,
        about_trial(study, chosen),
        study.get_trials(deepcopy=False),
        table_format=table_format,
        front=front_marks(study),
    )
    return chosen, files


def retrain_model(
    settings: Settings,
    study_name: str,
    *,
    out: str,
    trial: int | None = None,
    epochs: int | None = None,
    data_dir: str | None = None,
    table_format: str = "csv",
    force: bool = False,
) -> tuple[FrozenTrial, Retrained, list[Path]]:
    """`hpo retrain`: the best (or given) trial's configuration trained from scratch on
    train + validation, noted on the trial and exported as `hpo export` does."""
    import torch

    from hpo.runtime.worker import load_study_data
    from hpo.study.create import load_spec_from_storage
    from hpo.study.front import front_marks
    from hpo.study.summary import chosen_trial
    from hpo.training.export import about_trial, check_out_dir, write_export
    from hpo.training.retrain import record_retrain, retrain

    folder = Path(out)
    check_out_dir(folder, force=force)
    study = load_study(settings, study_name)
    spec = load_spec_from_storage(connect(settings), study_name)
    chosen = chosen_trial(study, trial)
    data = load_study_data(spec, data_dir, cache_dir=settings.artifacts)
    data = data.with_validation_in_train()
    device = "cuda" if torch.cuda.is_available() else "cpu"  # as a worker would
    from hpo.training.memory import device_data_bytes

    data = data.to(device, max_device_bytes=device_data_bytes(device))
    retrained = retrain(spec, chosen, data, epochs=epochs)
    if not record_retrain(study, chosen, retrained):
        log.warning("the storage cannot note a finished trial's retrain; it is in model.json")
    about = about_trial(study, chosen)
    files = write_export(
        folder,
        retrained.model,
        retrained.record,
        about,
        study.get_trials(deepcopy=False),
        table_format=table_format,
        front=front_marks(study),
    )
    return chosen, retrained, files


def best_of(
    settings: Settings, study_name: str
) -> tuple[optuna.Study, FrozenTrial | list[FrozenTrial]]:
    """The study and its best trial, or the feasible Pareto front (a list) of a
    multi-objective study; one line if the study or any such trial does not exist."""
    from hpo.study.front import front_trials, is_multi_objective
    from hpo.study.summary import best_trial

    study = load_study(settings, study_name)
    if is_multi_objective(study):
        front = front_trials(study)
        if not front:
            raise HpoError(f"study {study_name!r} has no completed feasible trial yet")
        return study, front
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
