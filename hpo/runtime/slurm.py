"""Slurm job arrays of `hpo worker`: check the cluster, render the batch script, submit,
watch and cancel.

`hpo launch study FILE --slurm --workers N` creates (or resumes) the study, then submits one
array of N tasks, each running `hpo worker --study NAME` against the same storage. Plain
`sbatch` rather than submitit: the task must be a shell that traps the time-limit warning,
stops the worker cleanly and requeues itself with `scontrol requeue`, around a CLI command,
not a pickled Python function.

Signals in a task (checked on a real slurmctld/slurmd 22.05):
- USR2 (`--signal=B:USR2@N`, N seconds before the time limit, or `scancel --signal=USR2
  --batch`): SIGTERM to the worker, which finishes its epoch, checkpoints, re-queues its
  trial in the study and exits 0; then this task is requeued, and the trial resumes from its
  checkpoint in whichever task claims it first.
- TERM (`scancel`, the hard time limit, preemption): Slurm sends it to the batch shell only,
  so the shell forwards it to the worker once (a second SIGTERM interrupts it mid-epoch) and
  waits. No requeue: slurmctld reports a cancelled and a timed-out task alike
  (COMPLETING), and a requeue there would undo `scancel`. The trial is re-queued in the
  study all the same, for the array's other tasks.

The storage URL, password included, reaches tasks only through the environment (HPO_STORAGE,
exported by sbatch from the submitting process, `--export=ALL`): never in the script or on
a command line.
"""

from __future__ import annotations

import datetime
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hpo.errors import HpoError
from hpo.runtime.launch import stop_on_signals

DEFAULT_COMMAND = ("python3", "-m", "hpo")  # how tasks start hpo; any `hpo` on their PATH works
WARNING_SECONDS = 120  # default lead of the time-limit warning: one epoch must fit in it
MIN_WARNING_SECONDS = 15  # a shorter time limit than twice this leaves a worker no time
POLL_SECONDS = 2.0  # how often a following launch asks Slurm about its array
QUERY_TIMEOUT_SECONDS = 15.0  # a controller that does not answer in this long is down
STORAGE_ENV = "HPO_STORAGE"
# Task states after which a task runs no more (squeue long names; sacct's first word).
FINISHED_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)
_TIME = re.compile(r"^(?:(\d+)-)?(\d{1,2}):([0-5]\d):([0-5]\d)$")  # [D-]HH:MM:SS
_EXTRA = re.compile(r"^[a-z][a-z0-9-]*=[^\s'\"\\$`;&|<>]+$")  # KEY=VALUE, nothing for a shell
_MEM = re.compile(r"^\d+[KMGT]?$")  # sbatch --mem: a number with an optional unit


@dataclass(frozen=True)
class SlurmOptions:
    """What one array asks of Slurm; None leaves a setting to the cluster's defaults."""

    workers: int  # array size: tasks, one `hpo worker` each
    gpus_per_worker: int = 0  # GPUs per task (--gres=gpu:G); 0 trains on the CPU
    partition: str | None = None  # None: the cluster's default partition
    time: str | None = None  # time limit of each task, [D-]HH:MM:SS; requeues restart it
    account: str | None = None  # account charged (--account), where the cluster needs one
    extra: tuple[str, ...] = ()  # further sbatch options as KEY=VALUE, e.g. "qos=long"
    cpus_per_task: int = 1  # cores per task; the worker's threads follow them
    mem: str | None = None  # memory per task as sbatch takes it ("4G"); None: DefMemPerCPU
    warning_seconds: int = WARNING_SECONDS  # USR2 this long before the time limit


@dataclass(frozen=True)
class SubmittedArray:
    """An array accepted by sbatch."""

    job_id: str  # the array's job id (SLURM_ARRAY_JOB_ID), for squeue, sacct, scancel
    script: Path  # the batch script as submitted


# ---------------------------------------------------------------- pure checks


def check_storage(url: str) -> None:
    """Refuse a SQLite storage: tasks on other nodes cannot share a SQLite file safely."""
    scheme = url.strip().partition(":")[0].partition("+")[0].lower()
    if scheme == "sqlite" or "://" not in url:
        raise HpoError(
            "Slurm tasks cannot share a SQLite storage across nodes: set HPO_STORAGE to "
            "postgresql://user@host/db, or grpc://host:port of a running `hpo proxy`"
        )


def check_options(options: SlurmOptions) -> None:
    """Refuse options sbatch would reject or the script cannot carry, naming the fix."""
    if options.workers < 1:
        raise HpoError(f"--workers must be >= 1 with --slurm, got {options.workers}")
    if options.gpus_per_worker < 0 or options.cpus_per_task < 1:
        raise HpoError("GPUs per worker must be >= 0 and CPUs per task >= 1")
    if options.time is not None and time_limit_seconds(options.time) < 2 * MIN_WARNING_SECONDS:
        raise HpoError(
            f"--time {options.time} is too short for a worker to start, train and stop: "
            f"give at least {2 * MIN_WARNING_SECONDS} s"
        )
    if options.mem is not None and not _MEM.match(options.mem):
        raise HpoError(f"memory {options.mem!r} is not a size sbatch takes, e.g. 4G or 4000M")
    for name, value in (("partition", options.partition), ("account", options.account)):
        if value is not None and not re.match(r"^[\w.-]+$", value):
            raise HpoError(f"{name} {value!r} is not a Slurm {name} name")
    for option in options.extra:
        if not _EXTRA.match(option):
            raise HpoError(
                f"sbatch option {option!r} must read KEY=VALUE (e.g. qos=long), without "
                "spaces, quotes or shell characters"
            )


def warning_lead(options: SlurmOptions) -> int:
    """Seconds before the time limit at which a task is warned (USR2): `warning_seconds`,
    or half the time limit when that is shorter, so a short --time still gets its warning."""
    if options.time is None:
        return options.warning_seconds
    return min(options.warning_seconds, time_limit_seconds(options.time) // 2)


def time_limit_seconds(text: str) -> int:
    """Seconds of a [D-]HH:MM:SS time limit; one line if it does not read so."""
    match = _TIME.match(text.strip())
    if match is None:
        raise HpoError(f"--time {text!r} must read HH:MM:SS (or D-HH:MM:SS), e.g. 04:00:00")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def partitions_of(sinfo_output: str) -> tuple[list[str], str | None]:
    """The partitions in `sinfo -h -o %P` output and the default one (marked `*`)."""
    names: list[str] = []
    default = None
    for line in sinfo_output.split():
        name = line.strip().rstrip("*")
        if line.strip().endswith("*"):
            default = name
        if name and name not in names:
            names.append(name)
    return names, default


def check_partition(partition: str, sinfo_output: str) -> None:
    """Refuse a partition the cluster does not have, listing those it has."""
    names, default = partitions_of(sinfo_output)
    if partition not in names:
        shown = ", ".join(f"{n} (default)" if n == default else n for n in names) or "none"
        raise HpoError(f"no Slurm partition {partition!r}; partitions here: {shown}")


def controller_answers(ping_output: str) -> bool:
    """Whether `scontrol ping` found a controller UP (primary or backup)."""
    return bool(re.search(r"\bis UP\b", ping_output))


# ---------------------------------------------------------------- the batch script


def render_batch_script(
    study: str,
    options: SlurmOptions,
    *,
    worker_args: Sequence[str],
    log_dir: Path,
    command: Sequence[str] = DEFAULT_COMMAND,
) -> str:
    """The sbatch script of an array of `hpo worker --study STUDY` tasks (see the module
    docstring for its signal handling). Pure: it reads nothing and holds no secret."""
    check_options(options)
    gpus = options.gpus_per_worker
    # A seed offset of its own for each worker process (one per GPU) and each restart: a
    # requeued task with its first offset would sample its first attempt's params again.
    attempt = f"SLURM_ARRAY_TASK_ID + ${{SLURM_RESTART_COUNT:-0}} * {options.workers}"
    index = f"$(({attempt}))" if gpus <= 1 else f"$((({attempt}) * {gpus}))"
    worker = [*command, "worker", "--study", study, "--gpus", "all" if gpus else "none"]
    # Slurm restricts CUDA_VISIBLE_DEVICES to the task's GPUs, so "all" means those.
    worker_line = " ".join([*map(shlex.quote, [*worker, *worker_args]), "--worker-index", index])
    name = slurm_name(study)
    log = log_dir / f"{name}-%A_%a.log"
    sbatch = [
        f"--job-name={name}",
        f"--array=0-{options.workers - 1}",
        "--requeue",
        "--open-mode=append",  # a requeued task adds to its log instead of overwriting it
        "--export=ALL",  # HPO_STORAGE and the rest of the submitting environment
        f"--signal=B:USR2@{warning_lead(options)}",
        f"--output={log}",
        f"--cpus-per-task={options.cpus_per_task}",
    ]
    sbatch += [f"--gres=gpu:{gpus}"] if gpus else []
    sbatch += [f"--mem={options.mem}"] if options.mem else []
    sbatch += [f"--partition={options.partition}"] if options.partition else []
    sbatch += [f"--time={options.time}"] if options.time else []
    sbatch += [f"--account={options.account}"] if options.account else []
    sbatch += [f"--{option}" for option in options.extra]
    header = "\n".join(f"#SBATCH {shlex.quote(line)}" for line in sbatch)
    return _SCRIPT.format(
        name=name, header=header, worker=worker_line, storage_env=STORAGE_ENV
    ).lstrip()


def slurm_name(study: str) -> str:
    """The job and log name of a study's array: any study name, made safe for a file name,
    a Slurm `%` pattern and a comment line."""
    return "hpo-" + re.sub(r"[^\w.-]", "_", study)[:60]


_SCRIPT = """
#!/bin/bash
# Slurm array {name} of `hpo worker`, written by hpo (hpo/runtime/slurm.py).
{header}
set -u
# The storage URL comes from the environment sbatch exported, never from this file.
if [ -z "${{{storage_env}:-}}" ]; then
    echo "hpo: {storage_env} is not set in this task's environment: export it before submitting" >&2
    exit 2
fi
echo "hpo: task ${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}} on $(hostname), \\
restart ${{SLURM_RESTART_COUNT:-0}}, GPUs ${{CUDA_VISIBLE_DEVICES:-none}}"

signalled=""
worker=""
stop_worker() {{
    # One SIGTERM only: the worker takes a second one as "stop now", mid-epoch.
    if [ -z "$signalled" ] && [ -n "$worker" ]; then
        echo "hpo: $1 received: the worker stops at its next epoch boundary"
        kill -TERM "$worker" 2>/dev/null
    fi
    signalled="$signalled $1"
}}
trap 'stop_worker USR2' USR2
trap 'stop_worker TERM' TERM

{worker} &
worker=$!
# A signal that came before the worker started stops it now.
[ -z "$signalled" ] || kill -TERM "$worker" 2>/dev/null
# `wait` returns early on each trapped signal: wait again until the worker has exited.
while :; do
    wait "$worker"
    status=$?
    kill -0 "$worker" 2>/dev/null || break
done

case "$signalled" in
*TERM*)
    # Cancelled, the hard time limit or preemption: no requeue, which would undo scancel.
    exit "$status"
    ;;
*USR2*)
    # The time-limit warning: run this task again; it resumes the trial from its checkpoint.
    scontrol requeue "${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
    exit 0
    ;;
esac
exit "$status"
"""


def sbatch_command(script: Path) -> list[str]:
    """The submitting command line: the script's path and nothing else of the study."""
    return ["sbatch", "--parsable", str(script)]


def parse_job_id(sbatch_output: str) -> str:
    """The job id from `sbatch --parsable` ("ID" or "ID;CLUSTER")."""
    job_id = sbatch_output.strip().splitlines()[-1].partition(";")[0] if sbatch_output else ""
    if not job_id.isdigit():
        raise HpoError(f"sbatch answered {sbatch_output.strip()!r} instead of a job id")
    return job_id


def output_dir(script: str) -> Path | None:
    """The folder of the script's `--output`: Slurm does not create it, and a task whose log
    folder is missing fails without a word."""
    match = re.search(r"^#SBATCH '?--output=(.+?)'?$", script, re.MULTILINE)
    return Path(match.group(1)).parent if match else None


def parse_states(output: str) -> dict[int, str]:
    """Task index -> state from lines "JOBID_TASK STATE" (squeue -r, sacct -P -X).

    A task not yet split from its pending array reads "JOBID_[0-3]" in sacct: each index
    of the range gets the state. sacct's "CANCELLED by 0" counts as CANCELLED.
    """
    states: dict[int, str] = {}
    for line in output.splitlines():
        fields = line.replace("|", " ").split()
        if len(fields) < 2 or "_" not in fields[0]:
            continue
        task, state = fields[0].partition("_")[2], fields[1].rstrip("+")
        for index in _task_indices(task):
            states[index] = state
    return states


def _task_indices(text: str) -> list[int]:
    """0 -> [0]; [0-3] -> [0, 1, 2, 3]; [0,2-3%1] -> [0, 2, 3]."""
    indices: list[int] = []
    for part in text.strip("[]").partition("%")[0].split(","):
        low, _, high = part.partition("-")
        if low.isdigit() and (not high or high.isdigit()):
            indices += range(int(low), int(high or low) + 1)
    return indices


def array_finished(states: Mapping[int, str], tasks: int) -> bool:
    """Whether each of the `tasks` tasks is known and runs no more."""
    return all(states.get(index) in FINISHED_STATES for index in range(tasks))


# ---------------------------------------------------------------- talking to Slurm


def _run(
    args: Sequence[str], env: Mapping[str, str] | None, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a Slurm command; a missing or hanging one is an HpoError, not a traceback."""
    timeout = QUERY_TIMEOUT_SECONDS if timeout is None else timeout
    try:
        return subprocess.run(
            list(args),
            env=None if env is None else dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise HpoError(f"{args[0]} not found on PATH: is Slurm's client installed here?") from None
    except subprocess.TimeoutExpired:
        raise HpoError(
            f"`{' '.join(args)}` did not answer within {timeout:.0f} s: is slurmctld up?"
        ) from None


def _first_line(result: subprocess.CompletedProcess[str]) -> str:
    """What a failed Slurm command said first (its error, or "... is DOWN")."""
    lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return lines[0] if lines else f"exit status {result.returncode}"


def preflight(
    options: SlurmOptions, storage_url: str, *, env: Mapping[str, str] | None = None
) -> None:
    """Every check, cheapest first; raises HpoError (one line) before anything is submitted."""
    env = os.environ if env is None else env
    check_storage(storage_url)
    check_options(options)
    if shutil.which("sbatch", path=env.get("PATH")) is None:
        raise HpoError(
            "sbatch not found on PATH: run this on a Slurm login node, or add Slurm's bin "
            "folder to PATH"
        )
    ping = _run(["scontrol", "ping"], env)
    if not controller_answers(ping.stdout):
        raise HpoError(
            f"the Slurm controller does not answer (scontrol ping: {_first_line(ping)}): "
            "check SLURM_CONF and `sinfo`, or ask the cluster's admins"
        )
    if options.partition is not None:
        listed = _run(["sinfo", "-h", "-o", "%P"], env)
        if listed.returncode != 0:
            raise HpoError(f"sinfo could not list the partitions: {_first_line(listed)}")
        check_partition(options.partition, listed.stdout)


def submit(script: str, *, env: Mapping[str, str], script_dir: Path) -> SubmittedArray:
    """Write `script` into `script_dir` (mode 0600) and submit it with `sbatch --parsable`
    under `env`, whose HPO_STORAGE sbatch exports to the tasks."""
    script_dir.mkdir(parents=True, exist_ok=True)
    logs = output_dir(script)
    if logs is not None:
        logs.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%f")
    path = script_dir / f"slurm-{stamp}-{os.getpid()}.sbatch"
    # The user's own file (0600), though it holds no secret.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(script)
    result = _run(sbatch_command(path), env, timeout=60)
    if result.returncode != 0:
        raise HpoError(f"sbatch refused the array: {_first_line(result)} (script: {path})")
    return SubmittedArray(job_id=parse_job_id(result.stdout), script=path)


def cancel(job_id: str, *, env: Mapping[str, str] | None = None) -> None:
    """Cancel every task of the array: each worker stops at its epoch boundary and
    re-queues its trial in the study; no task is requeued in Slurm."""
    result = _run(["scancel", job_id], env)
    if result.returncode != 0:
        raise HpoError(f"scancel {job_id} failed: {_first_line(result)}")


def array_states(job_id: str, *, env: Mapping[str, str] | None = None) -> dict[int, str]:
    """Task index -> state: Slurm's accounting (sacct) where slurmdbd runs, overlaid with
    squeue, which alone knows finished tasks for MinJobAge seconds where it does not."""
    states: dict[int, str] = {}
    sacct = _run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "JobID,State"], env)
    if sacct.returncode == 0:
        states.update(parse_states(sacct.stdout))
    squeue = _run(["squeue", "-h", "-r", "-t", "all", "-j", job_id, "-o", "%i %T"], env)
    if squeue.returncode == 0:  # an id squeue has forgotten is an error: sacct's answer stands
        states.update(parse_states(squeue.stdout))
    return states


def accounting_available(*, env: Mapping[str, str] | None = None) -> bool:
    """Whether sacct can read Slurm's accounting (slurmdbd configured and up)."""
    return _run(["sacct", "-n", "-X", "-o", "JobID"], env).returncode == 0


def launch_array(
    study: str,
    options: SlurmOptions,
    storage_url: str,
    *,
    worker_args: Sequence[str] = (),
    log_dir: Path,
    script_dir: Path,
    env: Mapping[str, str] | None = None,
    command: Sequence[str] = DEFAULT_COMMAND,
) -> SubmittedArray:
    """Check, render and submit in one call (for `hpo launch study --slurm`): the tasks get
    `storage_url` as HPO_STORAGE in their environment."""
    base = dict(os.environ if env is None else env)
    preflight(options, storage_url, env=base)
    script = render_batch_script(
        study, options, worker_args=list(worker_args), log_dir=log_dir, command=command
    )
    return submit(script, env={**base, STORAGE_ENV: storage_url}, script_dir=script_dir)


def follow_array(
    array: SubmittedArray,
    tasks: int,
    *,
    on_poll: Callable[[], None] | None = None,
    poll_seconds: float = POLL_SECONDS,
    env: Mapping[str, str] | None = None,
) -> dict[int, str]:
    """Wait until every task of the array has ended; their final states.

    `on_poll` runs at each poll (the launch's progress from the storage). The first Ctrl-C /
    SIGTERM cancels the array (each worker stops at its epoch boundary and re-queues its
    trial in the study) and raises KeyboardInterrupt once Slurm says the tasks have ended.
    """
    stop = threading.Event()
    with stop_on_signals(stop):
        while True:
            if on_poll is not None:
                on_poll()
            states = array_states(array.job_id, env=env)
            if array_finished(states, tasks):
                return states
            if stop.is_set():
                break
            stop.wait(poll_seconds)
    cancel(array.job_id, env=env)
    while not array_finished(array_states(array.job_id, env=env), tasks):
        time.sleep(poll_seconds)
    raise KeyboardInterrupt


def unfinished_tasks(states: Mapping[int, str]) -> dict[int, str]:
    """Tasks that ended other than COMPLETED (failed, cancelled, timed out, ...)."""
    return {index: state for index, state in sorted(states.items()) if state != "COMPLETED"}
