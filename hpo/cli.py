"""The `hpo` command: parse, call, print. Every HpoError becomes one line and exit 2."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any

import click
import optuna

from hpo.checkpoint import CHECKPOINT_EVERY
from hpo.data import DataError
from hpo.devices import parse_gpus, visible_gpus
from hpo.errors import HpoError
from hpo.storage import (
    DEFAULT_STORAGE,
    HEARTBEAT_INTERVAL,
    default_artifacts_dir,
    mask_url,
    open_storage,
)

EXIT_USAGE = 2


@dataclass
class Settings:
    """What the root group hands every command."""

    storage_url: str
    heartbeat_interval: int
    artifacts: str  # epoch checkpoints and report files; optuna-dashboard serves it
    checkpoint_every: float  # seconds of training between a trial's checkpoint writes

    def open(self) -> optuna.storages.RDBStorage:
        return open_storage(self.storage_url, heartbeat_interval=self.heartbeat_interval)

    @property
    def shown(self) -> str:
        return mask_url(self.storage_url)


pass_settings = click.make_pass_decorator(Settings)


@click.group(context_settings={"auto_envvar_prefix": "HPO", "help_option_names": ["-h", "--help"]})
@click.option(
    "--storage",
    default=DEFAULT_STORAGE,
    show_default=True,
    help="Optuna storage URL (env HPO_STORAGE). SQLite file locally, "
    "postgresql://user@host/db for distributed workers; put passwords in HPO_STORAGE, "
    "not on the command line.",
)
@click.option(
    "--heartbeat",
    "heartbeat_interval",
    type=click.IntRange(min=1),
    default=HEARTBEAT_INTERVAL,
    show_default=True,
    help="Seconds between heartbeats of a running trial; a trial silent for twice this "
    "long is failed and re-queued (env HPO_HEARTBEAT).",
)
@click.option(
    "--artifacts",
    type=click.Path(file_okay=False),
    help="Artifact folder: epoch checkpoints (retried trials resume from them) and report "
    "files, served by the dashboard; every host must see the same folder (env HPO_ARTIFACTS) "
    "[default: hpo-artifacts beside a SQLite file, else in the current folder].",
)
@click.option(
    "--checkpoint-every",
    type=click.FloatRange(min=0),
    default=CHECKPOINT_EVERY,
    show_default=True,
    help="Seconds of training between a trial's checkpoint writes: a killed trial loses at "
    "most this much work; 0 writes every epoch (env HPO_CHECKPOINT_EVERY).",
)
@click.version_option(package_name="hpo")
@click.pass_context
def cli(
    ctx: click.Context,
    storage: str,
    heartbeat_interval: int,
    artifacts: str | None,
    checkpoint_every: float,
) -> None:
    """Hyperparameter optimization of deep networks with Optuna and PyTorch."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = artifacts or str(default_artifacts_dir(storage))
    ctx.obj = Settings(storage, heartbeat_interval, folder, checkpoint_every)


# Options shared by the commands that start local workers.
_gpus_option = click.option(
    "--gpus",
    default="none",
    show_default=True,
    help="GPUs for local workers: all, none, or indices like 0,1 (one worker per GPU).",
)
_data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Folder with the data files (mnist, fashion-mnist, cifar10).",
)


@cli.group()
def launch() -> None:
    """Start things: `hpo launch study FILE`."""


@launch.command("study")
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--trials", type=int, help="Study-wide budget of finished trials [default: study file]."
)
@click.option(
    "--workers",
    type=int,
    default=1,
    show_default=True,
    help="Local CPU worker processes (with --gpus: one per GPU instead); 0 only creates the "
    "study, for workers elsewhere (`hpo worker`).",
)
@_gpus_option
@click.option("--name", help="Study name [default: study.name of the file].")
@_data_dir_option
@pass_settings
def launch_study(
    settings: Settings,
    file: str,
    trials: int | None,
    workers: int,
    gpus: str,
    name: str | None,
    data_dir: str | None,
) -> None:
    """Create (or resume) the study of FILE and run local workers until its budget is done."""
    from hpo.console import ProgressPrinter, print_summary
    from hpo.launch import WorkerPlan, plan_workers, run_local_workers, run_worker_here
    from hpo.spec import load_spec
    from hpo.study import open_study
    from hpo.summary import summarize

    spec = load_spec(file)
    if name:
        spec = dataclasses.replace(spec, name=name)
    if trials is not None and trials < 1:
        raise HpoError(f"--trials must be >= 1, got {trials}")
    if workers < 0:
        raise HpoError(f"--workers must be >= 0, got {workers}")
    plans = plan_workers(workers, parse_gpus(gpus, visible_gpus())) if workers else []
    if workers:
        _check_data(spec, data_dir)  # a create-only launch (docker compose) needs no data
    storage = settings.open()
    started = time.perf_counter()
    study = open_study(storage, spec, trials=trials)
    if not plans:
        click.echo(
            f"study {spec.name} ready in {settings.shown}; "
            f"join with `hpo worker --study {spec.name}`"
        )
        return
    click.echo(
        f"study {spec.name} in {settings.shown}: {len(plans)} worker(s), "
        f"sampler {spec.sampler.name}, pruner {spec.pruner.name}"
    )
    if plans == [WorkerPlan(0, None)]:  # one CPU worker: run it here, saving a process start
        run_worker_here(
            study,
            storage,
            data_dir=data_dir,
            artifacts=settings.artifacts,
            checkpoint_every=settings.checkpoint_every,
            on_progress=ProgressPrinter(spec.name),
        )
        codes = [0]
    else:
        codes = run_local_workers(
            study,
            settings.storage_url,
            plans,
            data_dir=data_dir,
            on_progress=ProgressPrinter(spec.name),
            extra_env=_worker_settings_env(settings),
        )
    print_summary(summarize(study), time.perf_counter() - started)
    if any(codes):
        raise HpoError(f"{sum(1 for c in codes if c)} worker(s) exited with errors: {codes}")


@cli.command()
@click.option(
    "--study", "study_name", required=True, help="Name of a study created by `hpo launch study`."
)
@click.option(
    "--gpus",
    default="all",
    show_default=True,
    help="all, none, or indices like 0,1 (one worker process per GPU).",
)
@click.option(
    "--worker-index",
    type=click.IntRange(min=0),
    help="Seed offset of this worker's sampler [default: from host and pid].",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Folder with the data files on this machine.",
)
@click.option("--quiet", is_flag=True, help="Log only warnings.")
@pass_settings
def worker(
    settings: Settings,
    study_name: str,
    gpus: str,
    worker_index: int | None,
    data_dir: str | None,
    quiet: bool,
) -> None:
    """Join a study from any machine that reaches its storage; run queued trials until done."""
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    selected = parse_gpus(gpus, visible_gpus())
    if worker_index is None:
        worker_index = 1 + zlib.crc32(f"{os.uname().nodename}:{os.getpid()}".encode()) % 100_000
    storage = settings.open()
    if len(selected) > 1:
        _worker_per_gpu(settings, storage, study_name, selected, worker_index, data_dir)
        return
    if "HPO_THREADS" in os.environ:
        import torch

        torch.set_num_threads(int(os.environ["HPO_THREADS"]))
    device = f"cuda:{selected[0]}" if selected else "cpu"
    from hpo.worker import run_worker

    stop = threading.Event()
    _stop_on_signals(stop)
    report = run_worker(
        storage,
        study_name,
        worker_index=worker_index,
        device=device,
        data_dir=data_dir,
        stop=stop,
        artifacts=settings.artifacts,
        checkpoint_every=settings.checkpoint_every,
    )
    states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(report.states.items())) or "none"
    logging.getLogger("hpo.worker").info(
        "worker %d done: %d trial(s) (%s) in %.1f s",
        worker_index,
        report.trials,
        states,
        report.seconds,
    )


def _worker_per_gpu(
    settings: Settings,
    storage: optuna.storages.RDBStorage,
    study_name: str,
    gpus: list[int],
    first_index: int,
    data_dir: str | None,
) -> None:
    from hpo.launch import WorkerPlan, run_local_workers
    from hpo.study import load_spec_from_storage

    load_spec_from_storage(storage, study_name)  # fail fast, with the study list, if absent
    study = optuna.load_study(study_name=study_name, storage=storage)
    plans = [WorkerPlan(first_index + i, gpu) for i, gpu in enumerate(gpus)]
    codes = run_local_workers(
        study,
        settings.storage_url,
        plans,
        data_dir=data_dir,
        extra_env=_worker_settings_env(settings),
    )
    if any(codes):
        raise HpoError(f"worker(s) exited with errors: {codes}")


def _worker_settings_env(settings: Settings) -> dict[str, str]:
    """What spawned workers inherit besides the storage: heartbeat and checkpoint settings."""
    return {
        "HPO_HEARTBEAT": str(settings.heartbeat_interval),
        "HPO_ARTIFACTS": settings.artifacts,
        "HPO_CHECKPOINT_EVERY": str(settings.checkpoint_every),
    }


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM / Ctrl-C: finish the current epoch, re-queue the trial, exit 0."""

    def request_stop(signum: int, _frame: Any) -> None:
        logging.getLogger("hpo.worker").warning(
            "%s received: stopping at the next epoch boundary", signal.Signals(signum).name
        )
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


@cli.command()
@pass_settings
def studies(settings: Settings) -> None:
    """List the studies in the storage with trial counts by state and best value."""
    from hpo.console import print_studies
    from hpo.summary import summarize_storage

    print_studies(summarize_storage(settings.open()), settings.shown)


@cli.command()
@click.argument("study_name")
@pass_settings
def best(settings: Settings, study_name: str) -> None:
    """Show the best trial of a study: value, params, test accuracy, user attrs."""
    from hpo.console import print_trial
    from hpo.summary import best_trial

    storage = settings.open()
    study = _load_study(storage, study_name, settings)
    trial = best_trial(study)
    if trial is None:
        raise HpoError(f"study {study_name!r} has no completed trial yet")
    print_trial(trial, title=f"Best trial of {study_name} ({study.direction.name.lower()})")


def _load_study(
    storage: optuna.storages.RDBStorage, study_name: str, settings: Settings
) -> optuna.Study:
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
        raise HpoError(
            f"no study named {study_name!r} in {settings.shown} "
            f"(studies there: {', '.join(names) or 'none'})"
        ) from None


def _check_data(spec: Any, data_dir: str | None) -> None:
    """Fail before touching the storage when the data set cannot be loaded here."""
    from hpo.worker import load_study_data

    load_study_data(spec, data_dir)


# ---------------------------------------------------------------- comparisons (issue 4)


def _out_option(function: Any) -> Any:
    return click.option(
        "--out",
        type=click.Path(file_okay=False),
        help="Folder for the report files [default: reports/GROUP].",
    )(function)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--samplers",
    default="random,tpe",
    show_default=True,
    help="Comma-separated samplers to compare (random, tpe, qmc, gp).",
)
@click.option(
    "--seeds", type=int, default=10, show_default=True, help="Studies (seeds) per sampler."
)
@click.option("--trials", type=int, help="Trial budget of each study [default: study file].")
@click.option(
    "--workers",
    type=int,
    default=1,
    show_default=True,
    help="Local CPU worker processes per study (with --gpus: one per GPU).",
)
@_gpus_option
@_data_dir_option
@_out_option
@click.option(
    "--no-report",
    is_flag=True,
    help="Only run the studies; build the report later with `hpo report`.",
)
@pass_settings
def compare(
    settings: Settings,
    file: str,
    samplers: str,
    seeds: int,
    trials: int | None,
    workers: int,
    gpus: str,
    data_dir: str | None,
    out: str | None,
    no_report: bool,
) -> None:
    """Run one study of FILE per (sampler, seed), then report which sampler wins.

    Resumable: run it again and only what is missing runs. The comparison is named after
    the file's study name; its studies are GROUP-SAMPLER-sSEED.
    """
    from hpo.comparison import derive_arms, parse_samplers, run_comparison
    from hpo.launch import plan_workers
    from hpo.report import CompareProgressPrinter
    from hpo.spec import load_spec

    spec = load_spec(file)
    names = parse_samplers(samplers)
    arms = derive_arms(spec, names, seeds)
    budget = trials if trials is not None else spec.trials
    if budget < 1:
        raise HpoError(f"--trials must be >= 1, got {budget}")
    if workers < 1:
        raise HpoError(f"--workers must be >= 1, got {workers}")
    plans = plan_workers(workers, parse_gpus(gpus, visible_gpus()))
    _check_data(spec, data_dir)
    storage = settings.open()
    click.echo(
        f"comparison {spec.name} in {settings.shown}: {', '.join(names)} x {seeds} seed(s) "
        f"x {budget} trials, {len(plans)} worker(s) per study"
    )
    codes = run_comparison(
        storage,
        settings.storage_url,
        arms,
        plans,
        trials=budget,
        data_dir=data_dir,
        on_progress=CompareProgressPrinter(),
        extra_env=_worker_settings_env(settings),
    )
    if any(codes):
        raise HpoError(f"{sum(1 for c in codes if c)} worker(s) exited with errors: {codes}")
    if not no_report:
        _build_report(settings, storage, spec.name, out)


@cli.command()
@click.argument("group")
@_out_option
@click.option(
    "--no-dashboard",
    is_flag=True,
    help="Write the files only; leave notes, plots and artifacts as they are.",
)
@pass_settings
def report(settings: Settings, group: str, out: str | None, no_dashboard: bool) -> None:
    """(Re)build the report of comparison GROUP from what is in the storage.

    Prints the table, writes HTML, PNG and Markdown files, and publishes notes, plots and
    the files to optuna-dashboard.
    """
    _build_report(settings, settings.open(), group, out, dashboard=not no_dashboard)


def _build_report(
    settings: Settings,
    storage: optuna.storages.RDBStorage,
    group: str,
    out: str | None,
    *,
    dashboard: bool = True,
) -> None:
    from pathlib import Path

    from hpo.dashboard import publish_comparison
    from hpo.report import build_report

    built = build_report(storage, group, Path(out or Path("reports") / group))
    if dashboard:
        publish_comparison(storage, built, settings.artifacts)
        click.echo(f"notes, plots and {len(built.files)} file(s) published; see `hpo dashboard`")


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; 0.0.0.0 exposes the dashboard to the network.",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8080,
    show_default=True,
    help="Port to listen on.",
)
@pass_settings
def dashboard(settings: Settings, host: str, port: int) -> None:
    """Serve optuna-dashboard on the storage, with the artifact store (notes, plots, files)."""
    from hpo.dashboard import serve

    click.echo(
        f"optuna-dashboard on http://{host}:{port}/ for {settings.shown}, "
        f"artifacts in {settings.artifacts}"
    )
    serve(settings.open(), host=host, port=port, artifact_dir=settings.artifacts)


def main() -> None:
    """Entry point: one line per user error, exit 2, no traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (HpoError, DataError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
