"""The `hpo` command: options, one call into the service, print.

Thin on purpose: every command imports what it needs when it runs, so `hpo --help`,
`hpo --version` and the commands that do not train start without torch. Every HpoError
becomes one line and exit 2 (see `main`).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from hpo.config.settings import CHECKPOINT_EVERY, DEFAULT_STORAGE, HEARTBEAT_INTERVAL, Settings
from hpo.errors import HpoError

EXIT_USAGE = 2
# A value given on the command line beats one from the environment, which beats a default;
# between equals, the one given closer to the command (after it) wins.
_RANK = {ParameterSource.COMMANDLINE: 2, ParameterSource.ENVIRONMENT: 1}

# ---------------------------------------------------------------- shared options


class AtLeast(click.IntRange):
    """An integer with a lower bound, whose error reads '--name must be >= N, got V'."""

    def __init__(self, minimum: int) -> None:
        super().__init__(min=minimum)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        number = click.INT.convert(value, param, ctx)
        if self.min is not None and number < self.min:
            self.fail(f"must be >= {self.min}, got {number}", param, ctx)
        return number


_SETTINGS_OPTIONS = (
    click.option(
        "--storage",
        envvar="HPO_STORAGE",
        default=DEFAULT_STORAGE,
        show_default=True,
        help="Optuna storage URL (env HPO_STORAGE): a SQLite file locally, "
        "postgresql://user@host/db for distributed workers, or grpc://host:port for a running "
        "`hpo proxy` (large fleets). Put passwords in HPO_STORAGE, not on the command line.",
    ),
    click.option(
        "--artifacts",
        envvar="HPO_ARTIFACTS",
        type=click.Path(file_okay=False),
        help="Artifact folder: epoch checkpoints (retried trials resume from them) and report "
        "files, served by the dashboard; every host must see the same folder (env "
        "HPO_ARTIFACTS) [default: hpo-artifacts beside a SQLite file, else in the current "
        "folder].",
    ),
    click.option(
        "--heartbeat",
        "heartbeat_interval",
        envvar="HPO_HEARTBEAT",
        type=AtLeast(1),
        default=HEARTBEAT_INTERVAL,
        show_default=True,
        help="Seconds between heartbeats of a running trial; a trial silent for twice this "
        "long is failed and re-queued (env HPO_HEARTBEAT).",
    ),
    click.option(
        "--checkpoint-every",
        envvar="HPO_CHECKPOINT_EVERY",
        type=click.FloatRange(min=0),
        default=CHECKPOINT_EVERY,
        show_default=True,
        help="Seconds of training between a trial's checkpoint writes: a killed trial loses "
        "at most this much work; 0 writes every epoch (env HPO_CHECKPOINT_EVERY).",
    ),
)


_SETTINGS_NAMES = ("storage", "artifacts", "heartbeat_interval", "checkpoint_every")


def settings_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The shared options, accepted before the subcommand or after it."""
    for option in reversed(_SETTINGS_OPTIONS):
        function = option(function)
    return function


def _settings(ctx: click.Context) -> Settings:
    """Each shared option's value from the context that holds the strongest one."""
    chosen: dict[str, tuple[Any, int]] = {}
    levels: list[click.Context] = []
    level: click.Context | None = ctx
    while level is not None:
        levels.insert(0, level)  # root first: later (closer to the command) wins ties
        level = level.parent
    for level in levels:
        for name in _SETTINGS_NAMES:
            if name in level.params:
                rank = _RANK.get(level.get_parameter_source(name), 0)  # type: ignore[arg-type]
                if name not in chosen or rank >= chosen[name][1]:
                    chosen[name] = (level.params[name], rank)
    given = {name: value for name, (value, _) in chosen.items()}
    artifacts = given["artifacts"]
    if not artifacts:
        from hpo.storage.urls import default_artifacts_dir

        artifacts = str(default_artifacts_dir(given["storage"]))
    return Settings(
        storage_url=given["storage"],
        heartbeat_interval=given["heartbeat_interval"],
        artifacts=artifacts,
        checkpoint_every=given["checkpoint_every"],
    )


def pass_settings(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give the command its Settings as first argument; add the shared options to it."""

    @functools.wraps(command)
    def with_settings(*args: Any, **kwargs: Any) -> Any:
        for name in _SETTINGS_NAMES:  # read from the contexts instead, see _settings
            kwargs.pop(name)
        return command(_settings(click.get_current_context()), *args, **kwargs)

    return settings_options(with_settings)


_study_workers_option = click.option(
    "--workers",
    type=AtLeast(1),
    default=1,
    show_default=True,
    help="Local CPU worker processes per study (with --gpus: one per GPU).",
)
_gpus_option = click.option(
    "--gpus",
    default="none",
    show_default=True,
    help="GPUs for local workers: all, none, or indices like 0,1.",
)
_workers_per_gpu_option = click.option(
    "--workers-per-gpu",
    type=AtLeast(1),
    default=1,
    show_default=True,
    help="Worker processes on each selected GPU, each capped to its share of the GPU's memory "
    "(small trials leave most of a GPU idle; see README on CUDA MPS).",
)
_data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Folder with the data files (mnist, fashion-mnist, cifar10) [default: data.dir of "
    "the study, then HPO_DATA, then /usr/share/datasets].",
)

SLURM_ONLY = ("gpus_per_worker", "partition", "time", "account", "slurm_option", "cpus_per_task")
SLURM_ONLY += ("mem", "detach")


def _slurm_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--slurm and the options of the job array it submits (see README "On a cluster")."""
    options = [
        click.option(
            "--slurm",
            is_flag=True,
            help="Run the workers as one Slurm job array of --workers tasks (sbatch), each "
            "`hpo worker` on the same storage (PostgreSQL or grpc://, not SQLite).",
        ),
        click.option(
            "--gpus-per-worker", type=AtLeast(0), default=0, help="With --slurm: GPUs per task."
        ),
        click.option("--partition", help="With --slurm: the partition [default: the cluster's]."),
        click.option("--time", help="With --slurm: time limit per task, [D-]HH:MM:SS."),
        click.option("--account", help="With --slurm: the account to charge."),
        click.option(
            "--slurm-option",
            multiple=True,
            metavar="KEY=VALUE",
            help="With --slurm: any further sbatch option, e.g. qos=long (repeatable).",
        ),
        click.option("--cpus-per-task", type=AtLeast(1), help="With --slurm: cores per task."),
        click.option("--mem", help="With --slurm: memory per task, e.g. 8G."),
        click.option(
            "--detach", is_flag=True, help="With --slurm: return once the array is submitted."
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def slurm_options(workers: int, given: dict[str, Any]) -> Any:
    """The SlurmOptions of a --slurm command, or None; a Slurm option without --slurm is a
    usage error."""
    if not given.pop("slurm"):
        stray = [name for name in SLURM_ONLY if given.get(name) not in (None, 0, (), False)]
        if stray:
            raise click.UsageError(f"--{stray[0].replace('_', '-')} needs --slurm")
        return None
    from hpo.runtime.slurm import SlurmOptions

    return SlurmOptions(
        workers=workers,
        gpus_per_worker=given["gpus_per_worker"],
        partition=given["partition"],
        time=given["time"],
        account=given["account"],
        extra=tuple(given["slurm_option"]),
        cpus_per_task=given["cpus_per_task"] or 1,
        mem=given["mem"],
    )


def _submitted(job_id: str, script: Any) -> None:
    click.echo(f"submitted Slurm array {job_id} (batch script: {script})")


# ---------------------------------------------------------------- commands


@click.group(context_settings={"auto_envvar_prefix": "HPO", "help_option_names": ["-h", "--help"]})
@settings_options
@click.version_option(package_name="hpo")
def cli(**_settings_given: Any) -> None:
    """Hyperparameter optimization of deep networks with Optuna and PyTorch."""


@cli.group()
def launch() -> None:
    """Start things: `hpo launch study FILE`."""


@launch.command("study")
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--trials",
    type=AtLeast(1),
    help="Study-wide budget of finished trials [default: study file].",
)
@click.option(
    "--workers",
    type=AtLeast(0),
    default=1,
    show_default=True,
    help="Local CPU worker processes (with --gpus: --workers-per-gpu on each GPU instead); "
    "0 only creates the study, for workers elsewhere (`hpo worker`).",
)
@_gpus_option
@_workers_per_gpu_option
@click.option("--name", help="Study name [default: study.name of the file].")
@_data_dir_option
@click.option(
    "--resume-stopped",
    is_flag=True,
    help="Run on a study that stopped early ([study] stop_after): the stop is cleared and "
    "the count of trials without improvement starts over.",
)
@_slurm_options
@pass_settings
def launch_study(
    settings: Settings,
    file: str,
    trials: int | None,
    workers: int,
    gpus: str,
    workers_per_gpu: int,
    name: str | None,
    data_dir: str | None,
    resume_stopped: bool,
    **slurm_given: Any,
) -> None:
    """Create (or resume) the study of FILE and run local workers until its budget is done.

    With --slurm, the workers are the tasks of one Slurm job array instead; progress is
    followed from the storage, and Ctrl-C cancels the array.
    """
    from hpo.report.console import LaunchProgress, print_summary
    from hpo.service import launch_study as launch
    from hpo.service import shown

    detach = slurm_given["detach"]
    slurm = slurm_options(workers, slurm_given)
    if slurm is not None and workers < 1:
        raise click.UsageError("--slurm needs --workers >= 1 (the array's tasks)")
    with LaunchProgress(shown(settings)) as progress:
        outcome = launch(
            settings,
            file,
            trials=trials,
            workers=workers,
            gpus=gpus,
            workers_per_gpu=workers_per_gpu,
            name=name,
            data_dir=data_dir,
            on_start=progress.start,
            on_progress=progress,
            on_warning=lambda text: click.echo(f"warning: {text}", err=True),
            slurm=slurm,
            detach=detach,
            on_submitted=_submitted,
            resume_stopped=resume_stopped,
        )
    if outcome.summary is None and outcome.job_id is not None:
        click.echo(
            f"study {outcome.name}: follow it with `hpo studies`; cancel: scancel {outcome.job_id}"
        )
        return
    if outcome.summary is None:
        click.echo(
            f"study {outcome.name} ready in {shown(settings)}; "
            f"join with `hpo worker --study {outcome.name}`"
        )
        return
    print_summary(outcome.summary, outcome.seconds)
    outcome.raise_for_failures()


@cli.command()
@click.option(
    "--study", "study_name", required=True, help="Name of a study created by `hpo launch study`."
)
@click.option(
    "--gpus",
    default="all",
    show_default=True,
    help="all, none, or indices like 0,1 (with several GPUs, one worker process each).",
)
@_workers_per_gpu_option
@click.option(
    "--worker-index",
    type=AtLeast(0),
    help="Seed offset of this worker's sampler [default: from host and pid].",
)
@_data_dir_option
@click.option("--quiet", is_flag=True, help="Log only warnings.")
@click.option("--workers", type=AtLeast(1), help="With --slurm: tasks of the job array.")
@_slurm_options
@pass_settings
def worker(
    settings: Settings,
    study_name: str,
    gpus: str,
    workers_per_gpu: int,
    worker_index: int | None,
    data_dir: str | None,
    quiet: bool,
    workers: int | None,
    **slurm_given: Any,
) -> None:
    """Join a study from any machine that reaches its storage; run queued trials until done.

    With --slurm, submit one Slurm job array of --workers tasks that do so instead.
    """
    from hpo.report.console import setup_logging
    from hpo.service import join_study

    detach = slurm_given["detach"]
    slurm = slurm_options(workers or 1, slurm_given)
    if slurm is None and workers is not None:
        raise click.UsageError("--workers needs --slurm (a local worker is one process)")
    if slurm is not None:
        from hpo.report.console import LaunchProgress, print_summary
        from hpo.service import join_on_slurm, shown

        with LaunchProgress(shown(settings)) as progress:
            outcome = join_on_slurm(
                settings,
                study_name,
                slurm,
                workers_per_gpu=workers_per_gpu,
                data_dir=data_dir,
                detach=detach,
                on_submitted=_submitted,
                on_progress=progress,
            )
        if outcome.summary is not None:
            print_summary(outcome.summary, outcome.seconds)
        return
    setup_logging(quiet=quiet)
    join_study(
        settings,
        study_name,
        gpus=gpus,
        workers_per_gpu=workers_per_gpu,
        worker_index=worker_index,
        data_dir=data_dir,
    )


@cli.command()
@click.argument("study_name")
@click.option(
    "--params",
    "params",
    multiple=True,
    required=True,
    help='A known configuration as a JSON object, e.g. \'{"lr": 0.01, "depth": 2}\': values '
    "of searched keys (the sampler draws the others); repeat for several.",
)
@pass_settings
def enqueue(settings: Settings, study_name: str, params: tuple[str, ...]) -> None:
    """Give a study known configurations to run next, within its budget."""
    from hpo.report.console import visible
    from hpo.service import enqueue_params

    done = enqueue_params(settings, study_name, params)
    again = done.given - done.added
    click.echo(
        f"study {visible(study_name)}: {done.added} configuration(s) enqueued"
        + (f", {again} enqueued before (skipped)" if again else "")
    )
    if done.waiting:
        click.echo(
            f"{done.waiting} known configuration(s) wait for budget: raise it with "
            "`hpo launch study FILE --trials N`"
        )
    if done.stopped:
        click.echo(f"the study {done.stopped}; they run once it is launched with --resume-stopped")


@cli.command()
@pass_settings
def studies(settings: Settings) -> None:
    """List the studies in the storage with trial counts by state and best value."""
    from hpo.report.console import print_studies
    from hpo.service import list_studies, shown

    print_studies(list_studies(settings), shown(settings))


@cli.command()
@click.argument("study_name")
@click.option("--all", "show_all", is_flag=True, help="Show every user attr (diagnostics too).")
@pass_settings
def best(settings: Settings, study_name: str, show_all: bool) -> None:
    """Show the best trial of a study: value, params, test accuracy, main user attrs."""
    from hpo.report.console import print_front, print_stopped, print_trial
    from hpo.service import best_of
    from hpo.study.stopping import stopped_reason

    study, trial = best_of(settings, study_name)
    if isinstance(trial, list):  # multi-objective: the Pareto front, one row per trial
        print_front(study, trial)
    else:
        title = f"Best trial of {study_name} ({study.direction.name.lower()})"
        print_trial(trial, title=title, show_all=show_all)
    reason = stopped_reason(study)
    if reason:
        print_stopped(study_name, reason)


# ---------------------------------------------------------------- the model back (issue 19)


def _model_out_options(function: Any) -> Any:
    """--out, --trial, --format and --force of `hpo export` and `hpo retrain`."""
    for option in reversed(
        (
            click.option(
                "--out",
                required=True,
                type=click.Path(file_okay=False),
                help="Folder for model.pt, model.json and the trials table.",
            ),
            click.option(
                "--trial",
                "trial_number",
                type=AtLeast(0),
                help="Number of a completed trial [default: the best].",
            ),
            click.option(
                "--format",
                "table_format",
                type=click.Choice(["csv", "json"]),
                default="csv",
                show_default=True,
                help="The trials table: trials.csv, or trials.jsonl (JSON lines).",
            ),
            click.option("--force", is_flag=True, help="Overwrite the files of a non-empty --out."),
        )
    ):
        function = option(function)
    return function


@cli.command()
@click.argument("study_name")
@_model_out_options
@pass_settings
def export(
    settings: Settings,
    study_name: str,
    out: str,
    trial_number: int | None,
    table_format: str,
    force: bool,
) -> None:
    """Write the kept weights of a study's best (or --trial) model to --out, with model.json
    and the trials table; load it with `hpo.load_model(OUT)`."""
    from hpo.service import export_model

    trial, files = export_model(
        settings, study_name, out=out, trial=trial_number, table_format=table_format, force=force
    )
    click.echo(f"trial {trial.number} of {study_name}: " + ", ".join(map(str, files)))


@cli.command()
@click.argument("study_name")
@_model_out_options
@click.option("--epochs", type=AtLeast(1), help="Epochs [default: those the trial trained].")
@_data_dir_option
@pass_settings
def retrain(
    settings: Settings,
    study_name: str,
    out: str,
    trial_number: int | None,
    table_format: str,
    force: bool,
    epochs: int | None,
    data_dir: str | None,
) -> None:
    """Train a study's best (or --trial) configuration from scratch on train + validation,
    with the trial's seed; report test accuracy, note it on the trial, export to --out."""
    from hpo.service import retrain_model

    trial, retrained, files = retrain_model(
        settings,
        study_name,
        out=out,
        trial=trial_number,
        epochs=epochs,
        data_dir=data_dir,
        table_format=table_format,
        force=force,
    )
    searched = trial.user_attrs.get("test_accuracy")
    click.echo(
        f"trial {trial.number} of {study_name} retrained on train + validation for "
        f"{retrained.epochs} epoch(s) in {retrained.seconds:.1f} s: test accuracy "
        f"{retrained.test_accuracy:.4f}"
        + (f" (searched model: {searched:.4f})" if isinstance(searched, float) else "")
    )
    click.echo("wrote " + ", ".join(map(str, files)))


# ---------------------------------------------------------------- comparisons (issue 4)


def _out_option(function: Any) -> Any:
    return click.option(
        "--out",
        type=click.Path(file_okay=False),
        help="Folder for the report files [default: reports/NAME-HASH, NAME the group name "
        "with only safe characters kept, HASH from the full name].",
    )(function)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--arms",
    help="Comma-separated arms to compare, each SAMPLER or SAMPLER+PRUNER: samplers random, "
    "tpe, qmc, gp, nsga2; pruners none, median, hyperband, sha (e.g. random,tpe,tpe+hyperband). "
    "An arm without +PRUNER uses the study file's pruner; +none turns pruning off. "
    "[default: random,tpe]",
)
@click.option("--samplers", help="The older name of --arms, still accepted.")
@click.option(
    "--seeds", type=AtLeast(1), default=10, show_default=True, help="Studies (seeds) per arm."
)
@click.option("--trials", type=AtLeast(1), help="Trial budget of each study [default: study file].")
@_study_workers_option
@_gpus_option
@_data_dir_option
@_out_option
@click.option(
    "--no-report",
    is_flag=True,
    help="Only run the studies; build the report later with `hpo report`.",
)
@click.option(
    "--replay",
    type=click.Path(dir_okay=False, path_type=str),
    help="A table written by `hpo record`: replay every arm against its recorded curves on "
    "a simulated clock (--workers simulated workers) instead of training; no storage.",
)
@pass_settings
def compare(
    settings: Settings,
    file: str,
    arms: str | None,
    samplers: str | None,
    seeds: int,
    trials: int | None,
    workers: int,
    gpus: str,
    data_dir: str | None,
    out: str | None,
    no_report: bool,
    replay: str | None,
) -> None:
    """Run one study of FILE per (arm, seed), then report which arm wins.

    An arm is a sampler with a pruner. Everything else (data split, epochs, search space,
    trial budget) is the same for every study. The report leads with compute to target:
    the training seconds each arm needs until its best reaches the baseline's (random,
    else the first arm) median final best. Resumable: run it again and only what is
    missing runs. The comparison is named after the file's study name; its studies are
    GROUP-ARM-sSEED (e.g. GROUP-tpe+hyperband-s0).
    """
    from hpo.compare import compare_file

    compare_file(
        settings,
        file,
        arms=arms,
        samplers=samplers,
        seeds=seeds,
        trials=trials,
        workers=workers,
        gpus=gpus,
        data_dir=data_dir,
        out=out,
        report=not no_report,
        replay=replay,
    )


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--configs",
    type=AtLeast(1),
    required=True,
    help="Configurations to record: the full grid of a choices-only space when N covers "
    "it, else N points of a scrambled Sobol sample.",
)
@click.option(
    "--repeats", type=AtLeast(1), default=2, show_default=True, help="Training seeds each."
)
@_study_workers_option
@_gpus_option
@_data_dir_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=str),
    required=True,
    help="The table to write (SQLite; format in README).",
)
@pass_settings
def record(
    settings: Settings,
    file: str,
    configs: int,
    repeats: int,
    workers: int,
    gpus: str,
    data_dir: str | None,
    out: str,
) -> None:
    """Record learning curves of FILE's space once, for `hpo compare FILE --replay TABLE`.

    Trains each configuration for the full epochs (no pruning), R seeds each, as ordinary
    studies NAME-record-rR (resumable), then writes every epoch's value and seconds and
    each run's test accuracy to the table.
    """
    from hpo.compare.record import record_file

    record_file(
        settings,
        file,
        configs=configs,
        repeats=repeats,
        workers=workers,
        gpus=gpus,
        data_dir=data_dir,
        out=out,
    )


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
    from hpo.compare import report_group

    report_group(settings, group, out=out, publish=not no_dashboard)


# ---------------------------------------------------------------- the lectures' claims (issue 11)


@cli.command()
@click.option(
    "--seeds", type=AtLeast(1), default=3, show_default=True, help="Runs (seeds) per variant."
)
@click.option(
    "--size",
    type=click.Choice(["full", "quick"]),
    default="full",
    show_default=True,
    help="quick: 2 epochs on small grids, seconds in all, for smoke tests; its verdicts "
    "mean little. Its studies are claims-quick-NAME.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Folder for the report files [default: reports/claims, reports/claims-quick].",
)
@click.option("--no-report", is_flag=True, help="Only train the runs; build the report later.")
@click.option(
    "--report-only", is_flag=True, help="Train nothing: rebuild the report from the storage."
)
@click.option(
    "--no-dashboard",
    is_flag=True,
    help="Write the files only; leave notes, plots and artifacts as they are.",
)
@pass_settings
def claims(
    settings: Settings,
    seeds: int,
    size: str,
    out: str | None,
    no_report: bool,
    report_only: bool,
    no_dashboard: bool,
) -> None:
    """Reproduce the lectures' claims from real training runs, and judge each one.

    BatchNorm on the rings network (curves, decision boundary), vanishing gradients,
    initialisation, BatchNorm and the learning rate, dropout. One study per claim
    (claims-NAME), one trial per run; the report says, from the numbers, where the data
    agree with each claim and where not. Resumable: finished runs are skipped.
    """
    from hpo.claims import claims_command

    claims_command(
        settings,
        seeds=seeds,
        size=size,
        out=out,
        report=not no_report,
        report_only=report_only,
        publish=not no_dashboard,
    )


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; 0.0.0.0 exposes the dashboard to the network (then a token is "
    "required).",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8080,
    show_default=True,
    help="Port to listen on.",
)
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="NAME",
    help="Another name browsers use to reach the dashboard (repeatable); requests for any "
    "other Host are refused [always allowed: the bound address, localhost, 127.0.0.1, [::1]].",
)
@click.option(
    "--token",
    envvar="HPO_DASHBOARD_TOKEN",
    help="Token every request must carry (?token=..., then a cookie) (env HPO_DASHBOARD_TOKEN) "
    "[default off loopback: generated and printed once].",
)
@click.option("--no-token", is_flag=True, help="Serve a non-loopback address without a token.")
@pass_settings
def dashboard(
    settings: Settings,
    host: str,
    port: int,
    allow_hosts: tuple[str, ...],
    token: str | None,
    no_token: bool,
) -> None:
    """Serve optuna-dashboard on the storage, with the artifact store (notes, plots, files)."""
    from hpo.report.console import visible
    from hpo.report.dashboard import dashboard_token
    from hpo.service import serve_dashboard, shown
    from hpo.storage.urls import is_loopback, url_host

    token, generated = dashboard_token(host, token, no_token=no_token)
    if not is_loopback(host):
        click.echo(
            f"warning: the dashboard on {host} can be reached from the network: whoever reaches "
            "it can read, change and delete every study"
            + ("; every request needs the token" if token else ", with --no-token and no token")
            + "; bind 127.0.0.1 and use an SSH tunnel, or keep it on a private network",
            err=True,
        )
    address = f"http://{url_host(host)}:{port}/" + (f"?token={token}" if generated else "")
    click.echo(
        visible(
            f"optuna-dashboard on {address} for {shown(settings)}, artifacts in "
            f"{settings.artifacts}"
        )
    )
    serve_dashboard(settings, host=host, port=port, allow_hosts=allow_hosts, token=token)


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; 0.0.0.0 serves workers on other machines (keep it on a private "
    "network unless --tls-client-ca makes clients prove who they are).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=13000,
    show_default=True,
    help="Port to listen on (0: any free port; the line printed at start names it).",
)
@click.option(
    "--threads",
    type=AtLeast(1),
    default=8,
    show_default=True,
    help="Calls served at once; the proxy holds one database connection per thread, plus one.",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False),
    help="Serve TLS with this certificate (PEM; with --tls-key); workers then use grpcs:// "
    "and trust it through HPO_TLS_CA.",
)
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="Its key (PEM).")
@click.option(
    "--tls-client-ca",
    type=click.Path(exists=True, dir_okay=False),
    help="Mutual TLS: accept only clients whose certificate (HPO_TLS_CERT / HPO_TLS_KEY) this "
    "CA signed; this is the proxy's authentication.",
)
@pass_settings
def proxy(
    settings: Settings,
    host: str,
    port: int,
    threads: int,
    tls_cert: str | None,
    tls_key: str | None,
    tls_client_ca: str | None,
) -> None:
    """Serve Optuna's gRPC storage proxy in front of --storage, for large fleets.

    Workers pass --storage grpc://HOST:PORT (grpcs:// with --tls-cert) and open no database
    connection of their own. Stops cleanly on SIGTERM or Ctrl-C.
    """
    from hpo.service import serve_proxy, shown
    from hpo.storage.urls import is_loopback

    if (tls_cert is None) != (tls_key is None) or (tls_client_ca and not tls_cert):
        raise click.UsageError(
            "--tls-cert and --tls-key go together (and --tls-client-ca with them)"
        )
    if not is_loopback(host) and not tls_client_ca:
        click.echo(
            f"warning: the storage proxy on {host} has no authentication: whoever reaches its "
            "port can read, change and delete every study; keep it on a private network, or "
            "require client certificates with --tls-cert/--tls-key/--tls-client-ca",
            err=True,
        )
    serve_proxy(
        settings,
        host=host,
        port=port,
        threads=threads,
        tls_files=(tls_cert, tls_key, tls_client_ca) if tls_cert and tls_key else None,
        on_ready=lambda url: click.echo(
            f"storage proxy for {shown(settings)} on {url}; workers use --storage {url}"
            + (" (with this machine's address)" if host in ("0.0.0.0", "::") else ""),
        ),
    )


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--workers", type=AtLeast(1), required=True, help="Worker pods (an Indexed Job).")
@click.option("--image", required=True, help="The hpo image (see Dockerfile) every pod runs.")
@click.option(
    "--gpus-per-worker",
    type=AtLeast(0),
    default=0,
    show_default=True,
    help="nvidia.com/gpu of each worker pod; 0: CPU workers.",
)
@_workers_per_gpu_option
@click.option("--name", help="Study name [default: study.name of the file].")
@click.option("--trials", type=AtLeast(1), help="Study-wide budget [default: the file's].")
@click.option("--namespace", default="default", show_default=True, help="Of every object.")
@click.option(
    "--database",
    type=click.Choice(["postgres", "external"]),
    default="postgres",
    show_default=True,
    help="postgres: a PostgreSQL StatefulSet in the cluster; external: the database URL in "
    "the Secret (key url) is an existing server.",
)
@click.option("--out", type=click.Path(file_okay=False), help="Folder [default: k8s/NAME].")
@click.option("--force", is_flag=True, help="Rewrite the manifests of an existing folder.")
def k8s(
    file: str,
    workers: int,
    image: str,
    gpus_per_worker: int,
    workers_per_gpu: int,
    name: str | None,
    trials: int | None,
    namespace: str,
    database: str,
    out: str | None,
    force: bool,
) -> None:
    """Write Kubernetes manifests that run FILE's study on a cluster: PostgreSQL, the storage
    proxy, optuna-dashboard (ClusterIP only), a launch Job and an Indexed Job of workers.

    The database password comes from a Secret you create (the README.txt written beside
    the manifests says how); it is in no manifest.
    """
    from hpo.service import write_kubernetes

    written = write_kubernetes(
        file,
        out=out,
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
    folder = written[0].parent if written else out
    click.echo(f"wrote {len(written)} files to {folder}; read {folder}/README.txt, then")
    click.echo(f"kubectl apply -f {folder}")


def main() -> None:
    """Entry point: one line per user error, exit 2, no traceback."""
    try:
        cli.main(prog_name="hpo", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        click.echo(f"error: {usage_line(exc)}", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except HpoError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


def usage_line(exc: click.UsageError) -> str:
    """Click's usage error as one line: the option, what is wrong, where help is."""
    missing = isinstance(exc, click.MissingParameter)  # it has no message of its own
    if isinstance(exc, click.BadParameter) and not missing and exc.param and exc.param.opts:
        message = f"{exc.param.opts[0]} {exc.message}"
    else:
        message = exc.format_message()
    path = exc.ctx.command_path if exc.ctx is not None else "hpo"
    return f"{message} (see `{path} --help`)"
