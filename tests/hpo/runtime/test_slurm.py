"""Slurm arrays of `hpo worker` (hpo.runtime.slurm): the batch script, the checks that
refuse before submitting, and real arrays on a single-node Slurm (tests/hpo/runtime/kit.py)
against PostgreSQL."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from hpo.errors import HpoError
from hpo.runtime import slurm
from hpo.runtime.slurm import SlurmOptions
from tests.helpers import HpoProcesses, hpo_env, read_line, run_hpo, study_text
from tests.hpo.runtime import kit

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[3]
SECRET = "s3cret-Pa55word"
SECRET_URL = f"postgresql://hpo:{SECRET}@db-host:5432/hpo"
SPACE = """depth = { low = 1, high = 2 }
width = { low = 8, high = 16 }
activation = { choices = ["relu", "tanh"] }
lr = { low = 1e-3, high = 1e-1, log = true }
batch_size = 64"""
ARRAY_SECONDS = 300  # bound on each wait for an array: a broken task fails the test


def render(
    options: SlurmOptions | None = None,
    *,
    worker_args: Sequence[str] = (),
    log_dir: Path = Path("/shared/logs"),
    command: Sequence[str] = slurm.DEFAULT_COMMAND,
) -> str:
    return slurm.render_batch_script(
        "tiny",
        options or SlurmOptions(workers=3),
        worker_args=worker_args,
        log_dir=log_dir,
        command=command,
    )


def sbatch_lines(script: str) -> list[str]:
    return [line.removeprefix("#SBATCH ") for line in script.splitlines() if "#SBATCH" in line]


def stub(folder: Path, name: str, body: str) -> None:
    """An executable `name` in `folder` running the shell `body` (a stand-in Slurm client)."""
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def one_line_error(call: Callable[[], object]) -> str:
    """The HpoError `call` raises: one line, as the CLI prints it."""
    with pytest.raises(HpoError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message, message
    return message


# ---------------------------------------------------------------- the batch script


def test_script_runs_one_array_of_requeueable_workers() -> None:
    script = render(SlurmOptions(workers=3))
    lines = sbatch_lines(script)
    assert script.startswith("#!/bin/bash\n")
    assert "--array=0-2" in lines
    assert "--requeue" in lines
    assert "--signal=B:USR2@120" in lines  # to the batch shell, before the time limit
    assert "--export=ALL" in lines
    assert "--open-mode=append" in lines  # a requeued task keeps its earlier log
    assert "--output=/shared/logs/hpo-tiny-%A_%a.log" in lines
    assert "--cpus-per-task=1" in lines
    assert not [line for line in lines if line.startswith(("--gres", "--mem", "--partition"))]
    assert not [line for line in lines if line.startswith(("--time", "--account"))]
    worker = "python3 -m hpo worker --study tiny --gpus none --worker-index"
    offset = "$((SLURM_ARRAY_TASK_ID + ${SLURM_RESTART_COUNT:-0} * 3))"
    assert f"{worker} {offset} &" in script.splitlines()
    assert 'scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"' in script
    assert "trap 'stop_worker USR2' USR2" in script
    assert "trap 'stop_worker TERM' TERM" in script


def test_script_gives_gpu_workers_their_gres_and_all_visible_gpus() -> None:
    script = render(SlurmOptions(workers=2, gpus_per_worker=2))
    assert "--gres=gpu:2" in sbatch_lines(script)
    # Seed offsets stay distinct with a worker process per GPU in each task.
    offset = "$(((SLURM_ARRAY_TASK_ID + ${SLURM_RESTART_COUNT:-0} * 2) * 2))"
    assert f"--gpus all --worker-index {offset} &" in script


def test_script_carries_every_option_given() -> None:
    options = SlurmOptions(
        workers=1,
        partition="gpu",
        time="1-02:00:00",
        account="proj",
        extra=("qos=long", "constraint=a100"),
        cpus_per_task=8,
        mem="32G",
        warning_seconds=600,
    )
    lines = sbatch_lines(render(options))
    for line in (
        "--array=0-0",
        "--partition=gpu",
        "--time=1-02:00:00",
        "--account=proj",
        "--qos=long",
        "--constraint=a100",
        "--cpus-per-task=8",
        "--mem=32G",
        "--signal=B:USR2@600",
    ):
        assert line in lines


def test_script_quotes_what_the_shell_would_split(tmp_path: Path) -> None:
    script = render(
        worker_args=["--data-dir", "/data sets/x"],
        log_dir=Path("/logs with space"),
        command=("/opt/my env/bin/python", "-m", "hpo"),
    )
    assert "'/opt/my env/bin/python' -m hpo worker --study tiny" in script
    assert "--data-dir '/data sets/x'" in script
    assert "#SBATCH '--output=/logs with space/hpo-tiny-%A_%a.log'" in script
    assert slurm.output_dir(script) == Path("/logs with space")
    path = tmp_path / "job.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0  # valid bash


def test_any_study_name_is_safe_in_the_script(tmp_path: Path) -> None:
    study = "my study/%x\necho pwned"
    script = slurm.render_batch_script(
        study, SlurmOptions(workers=1), worker_args=[], log_dir=Path("/logs")
    )
    assert "--job-name=hpo-my_study__x_echo_pwned" in sbatch_lines(script)
    assert "--output=/logs/hpo-my_study__x_echo_pwned-%A_%a.log" in sbatch_lines(script)
    assert "--study 'my study/%x\necho pwned' --gpus none" in script  # the name, quoted
    assert "\necho pwned\n" not in script
    path = tmp_path / "job.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0


def test_no_secret_in_the_script_or_the_sbatch_command_line(tmp_path: Path) -> None:
    """The storage URL, password included, reaches sbatch only in its environment."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "record"
    stub(bin_dir, "scontrol", "echo 'Slurmctld(primary) at vm is UP'")
    stub(bin_dir, "sbatch", f'echo "$@" > {record}.argv; /usr/bin/env > {record}.env; echo 42')
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    submitted = slurm.launch_array(
        "tiny",
        SlurmOptions(workers=2),
        SECRET_URL,
        log_dir=tmp_path / "logs",
        script_dir=tmp_path / "scripts",
        env=env,
    )
    assert submitted.job_id == "42"
    script = submitted.script.read_text()
    argv = Path(f"{record}.argv").read_text()
    assert SECRET not in script and "db-host" not in script
    assert SECRET not in argv
    assert argv.split() == slurm.sbatch_command(submitted.script)[1:]
    assert f"HPO_STORAGE={SECRET_URL}" in Path(f"{record}.env").read_text().splitlines()
    assert stat.S_IMODE(submitted.script.stat().st_mode) == 0o600
    assert submitted.script.parent == tmp_path / "scripts"
    assert (tmp_path / "logs").is_dir()  # Slurm would not create it, and lose the logs


# ---------------------------------------------------------------- pure parsing


def test_partitions_of_marks_the_default() -> None:
    assert slurm.partitions_of("debug*\nother\n") == (["debug", "other"], "debug")
    assert slurm.partitions_of("a\nb*\na\n") == (["a", "b"], "b")
    assert slurm.partitions_of("") == ([], None)


def test_unknown_partition_lists_the_known_ones() -> None:
    slurm.check_partition("debug", "debug*\nother\n")
    message = one_line_error(lambda: slurm.check_partition("gpu", "debug*\nother\n"))
    assert message == "no Slurm partition 'gpu'; partitions here: debug (default), other"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:10:00", 600), ("4:00:00", 14400), ("1-00:00:01", 86401), ("99:59:59", 359999)],
)
def test_time_limit_seconds(text: str, seconds: int) -> None:
    assert slurm.time_limit_seconds(text) == seconds


@pytest.mark.parametrize(
    ("output", "up"),
    [
        ("Slurmctld(primary) at vm is UP\n", True),
        ("Slurmctld(primary) at a is DOWN\nSlurmctld(backup) at b is UP\n", True),
        ("Slurmctld(primary) at vm is DOWN\n****\n", False),
        ("", False),
    ],
)
def test_controller_answers(output: str, up: bool) -> None:
    assert slurm.controller_answers(output) is up


def test_parse_job_id() -> None:
    assert slurm.parse_job_id("42\n") == "42"
    assert slurm.parse_job_id("42;cluster\n") == "42"
    assert "instead of a job id" in one_line_error(lambda: slurm.parse_job_id("oops\n"))


def test_parse_states_of_squeue_and_sacct() -> None:
    squeue = "12_0 RUNNING\n12_1 PENDING\n"
    assert slurm.parse_states(squeue) == {0: "RUNNING", 1: "PENDING"}
    sacct = "12_0|COMPLETED\n12_1|CANCELLED by 0\n12_[2-3]|PENDING\n12_[5,7-8%2]|PENDING\n"
    assert slurm.parse_states(sacct) == {
        0: "COMPLETED",
        1: "CANCELLED",
        2: "PENDING",
        3: "PENDING",
        5: "PENDING",
        7: "PENDING",
        8: "PENDING",
    }
    assert slurm.parse_states("12 RUNNING\nnoise\n") == {}  # not an array task


def test_array_finished() -> None:
    assert slurm.array_finished({0: "COMPLETED", 1: "CANCELLED"}, 2)
    assert not slurm.array_finished({0: "COMPLETED", 1: "RUNNING"}, 2)
    assert not slurm.array_finished({0: "COMPLETED"}, 2)  # task 1 unknown yet
    assert not slurm.array_finished({0: "COMPLETING"}, 1)


# ---------------------------------------------------------------- refusals, before submitting


@pytest.mark.parametrize(
    "url", ["sqlite:///hpo.db", "sqlite+pysqlite:////abs/hpo.db", "SQLite:///x.db", "hpo.db"]
)
def test_sqlite_storage_is_refused(url: str) -> None:
    message = one_line_error(lambda: slurm.check_storage(url))
    assert "SQLite" in message and "postgresql://" in message and "grpc://" in message


@pytest.mark.parametrize(
    "url", ["postgresql://u@h/db", "postgresql+psycopg://u@h/db", "grpc://h:1"]
)
def test_shared_storages_pass(url: str) -> None:
    slurm.check_storage(url)


def test_a_short_time_limit_is_warned_at_half_its_length() -> None:
    assert "--signal=B:USR2@30" in sbatch_lines(render(SlurmOptions(workers=1, time="00:01:00")))
    assert "--signal=B:USR2@120" in sbatch_lines(render(SlurmOptions(workers=1, time="01:00:00")))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (SlurmOptions(workers=0), "--workers must be >= 1 with --slurm, got 0"),
        (SlurmOptions(workers=1, gpus_per_worker=-1), "GPUs per worker must be >= 0"),
        (SlurmOptions(workers=1, time="4h"), "must read HH:MM:SS"),
        (SlurmOptions(workers=1, time="00:00:20"), "is too short for a worker"),
        (SlurmOptions(workers=1, mem="lots"), "is not a size sbatch takes"),
        (SlurmOptions(workers=1, partition="a b"), "is not a Slurm partition name"),
        (SlurmOptions(workers=1, account="x;rm"), "is not a Slurm account name"),
        (SlurmOptions(workers=1, extra=("qos",)), "must read KEY=VALUE"),
        (SlurmOptions(workers=1, extra=("qos=a b",)), "must read KEY=VALUE"),
        (SlurmOptions(workers=1, extra=("comment=$(id)",)), "must read KEY=VALUE"),
    ],
)
def test_bad_options_are_refused(options: SlurmOptions, message: str) -> None:
    assert message in one_line_error(lambda: slurm.check_options(options))
    assert message in one_line_error(lambda: render(options))


def test_refused_without_sbatch(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # an empty folder: no Slurm client
    message = one_line_error(
        lambda: slurm.preflight(SlurmOptions(workers=1), "postgresql://u@h/db", env=env)
    )
    assert message.startswith("sbatch not found on PATH")


def test_sqlite_refused_before_slurm_is_asked(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}
    message = one_line_error(
        lambda: slurm.preflight(SlurmOptions(workers=1), "sqlite:///x", env=env)
    )
    assert "SQLite" in message


def test_refused_when_the_controller_is_down_stub(tmp_path: Path) -> None:
    stub(tmp_path, "sbatch", "exit 99")
    stub(tmp_path, "scontrol", "echo 'Slurmctld(primary) at vm is DOWN'; echo '****'; exit 1")
    env = {**os.environ, "PATH": str(tmp_path)}
    message = one_line_error(
        lambda: slurm.preflight(SlurmOptions(workers=1), "postgresql://u@h/db", env=env)
    )
    assert message.startswith("the Slurm controller does not answer (scontrol ping: ")
    assert "is DOWN" in message


def test_refused_when_the_controller_hangs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stub(tmp_path, "sbatch", "exit 99")
    stub(tmp_path, "scontrol", "exec /bin/sleep 30")
    monkeypatch.setattr(slurm, "QUERY_TIMEOUT_SECONDS", 1.0)
    env = {**os.environ, "PATH": str(tmp_path)}
    message = one_line_error(
        lambda: slurm.preflight(SlurmOptions(workers=1), "postgresql://u@h/db", env=env)
    )
    assert message == "`scontrol ping` did not answer within 1 s: is slurmctld up?"


def test_refused_when_the_controller_is_down_real(tmp_path: Path) -> None:
    """The real scontrol, pointed at a configuration whose controller is not running."""
    if kit.unavailable_reason() is not None:
        pytest.skip(f"no Slurm client: {kit.unavailable_reason()}")
    ports = dict(zip(("slurmctld", "slurmd", "slurmdbd"), kit._free_ports(3), strict=True))
    conf = tmp_path / "slurm.conf"
    text = kit.render_slurm_conf(
        tmp_path, host="nohost", ports=ports, cpus=1, memory_mb=1, dbd=False
    )
    conf.write_text(text)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    message = one_line_error(
        lambda: slurm.preflight(SlurmOptions(workers=1), "postgresql://u@h/db", env=env)
    )
    assert message.startswith("the Slurm controller does not answer")


def test_refused_for_an_unknown_partition_stub(tmp_path: Path) -> None:
    stub(tmp_path, "sbatch", "exit 99")
    stub(tmp_path, "scontrol", "echo 'Slurmctld(primary) at vm is UP'")
    stub(tmp_path, "sinfo", "printf 'debug*\\nother\\n'")
    env = {**os.environ, "PATH": str(tmp_path)}
    options = SlurmOptions(workers=1, partition="gpu")
    message = one_line_error(lambda: slurm.preflight(options, "postgresql://u@h/db", env=env))
    assert message == "no Slurm partition 'gpu'; partitions here: debug (default), other"
    slurm.preflight(SlurmOptions(workers=1, partition="other"), "grpc://h:1", env=env)


def test_sbatch_refusal_is_one_line(tmp_path: Path) -> None:
    stub(
        tmp_path,
        "sbatch",
        "echo 'sbatch: error: Batch job submission failed: Invalid account' >&2; exit 1",
    )
    env = {**os.environ, "PATH": f"{tmp_path}:/usr/bin:/bin"}
    message = one_line_error(lambda: slurm.submit(render(), env=env, script_dir=tmp_path / "s"))
    assert message.startswith("sbatch refused the array: sbatch: error: Batch job submission")


# ---------------------------------------------------------------- a real Slurm


def poll(condition: Callable[[], T | None], what: str, timeout: float = ARRAY_SECONDS) -> T:
    """`condition()` once a second until truthy; fails after `timeout` s naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def task_env(cluster: kit.Cluster, storage_url: str, artifacts: Path) -> dict[str, str]:
    """What sbatch exports to the tasks: this checkout, the storage, a checkpoint each epoch."""
    settings = {
        "HPO_STORAGE": storage_url,
        "HPO_ARTIFACTS": str(artifacts),
        "HPO_CHECKPOINT_EVERY": "0",
        "HPO_HEARTBEAT": "1",
        "HPO_THREADS": "1",
    }
    return {**hpo_env(settings), "SLURM_CONF": cluster.env["SLURM_CONF"], "PYTHONPATH": str(REPO)}


def create_study(
    folder: Path, env: Mapping[str, str], *, trials: int, epochs: int, max_train: int
) -> str:
    """Create a study with `hpo launch study FILE --workers 0`; its name."""
    path = folder / "study.toml"
    data = f'name = "rings"\nmax_train = {max_train}'
    path.write_text(study_text("slurm", SPACE, trials=trials, epochs=epochs, data=data))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpo",
            "launch",
            "study",
            str(path),
            "--workers",
            "0",
            "--trials",
            str(trials),
        ],
        cwd=REPO,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return "slurm"


def submit_workers(
    cluster: kit.Cluster, study: str, env: Mapping[str, str], folder: Path, workers: int
) -> slurm.SubmittedArray:
    return slurm.launch_array(
        study,
        SlurmOptions(workers=workers),
        env["HPO_STORAGE"],
        log_dir=folder / "logs",
        script_dir=folder / "scripts",
        env=env,
        command=(sys.executable, "-m", "hpo"),
    )


def wait_finished(cluster: kit.Cluster, job_id: str, tasks: int) -> dict[int, str]:
    """The tasks' states once none of them runs any more."""

    def finished() -> dict[int, str] | None:
        states = slurm.array_states(job_id, env=cluster.env)
        return states if slurm.array_finished(states, tasks) else None

    return poll(finished, f"array {job_id} to finish")


def counted(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that count against the budget: all but superseded (re-queued) attempts."""
    superseded = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    return [t for t in trials if t.number not in superseded]


def assert_budget_exact(storage_url: str, study: str, budget: int) -> list[FrozenTrial]:
    trials = optuna.load_study(study_name=study, storage=storage_url).get_trials()
    done = counted(trials)
    assert [t.state for t in done] == [TrialState.COMPLETE] * budget, [
        (t.number, t.state.name, t.user_attrs.get("fail_reason")) for t in trials
    ]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    params = [tuple(sorted(t.params.items())) for t in done]
    assert len(set(params)) == budget  # no trial ran twice to completion
    return trials


def logs(folder: Path) -> str:
    return "\n".join(path.read_text() for path in sorted((folder / "logs").glob("*.log")))


@pytest.mark.slurm
@pytest.mark.postgres
def test_array_of_two_workers_finishes_the_budget(
    slurm_cluster: kit.Cluster, postgres_url: str, tmp_path: Path
) -> None:
    env = task_env(slurm_cluster, postgres_url, tmp_path / "artifacts")
    study = create_study(tmp_path, env, trials=6, epochs=2, max_train=300)
    submitted = submit_workers(slurm_cluster, study, env, tmp_path, workers=2)

    states = wait_finished(slurm_cluster, submitted.job_id, 2)

    assert states == {0: "COMPLETED", 1: "COMPLETED"}, logs(tmp_path)
    assert_budget_exact(postgres_url, study, 6)
    if slurm_cluster.accounting:  # Slurm's own history, written asynchronously
        sacct = ["sacct", "-n", "-X", "-P", "-j", submitted.job_id, "-o", "JobID,State"]
        poll(
            lambda: (
                slurm.parse_states(_stdout(sacct, slurm_cluster.env))
                == {0: "COMPLETED", 1: "COMPLETED"}
            ),
            "both tasks in sacct",
        )


@pytest.mark.slurm
@pytest.mark.postgres
def test_time_limit_warning_requeues_the_task_and_resumes_the_trial(
    slurm_cluster: kit.Cluster, postgres_url: str, tmp_path: Path
) -> None:
    env = task_env(slurm_cluster, postgres_url, tmp_path / "artifacts")
    # Long enough that the trial is still training when USR2 arrives: on a quiet machine 30
    # epochs of rings ended before the signal did, and the trial completed unrequeued.
    study = create_study(tmp_path, env, trials=2, epochs=300, max_train=3000)
    # One task: the requeued task itself must take the trial back.
    submitted = submit_workers(slurm_cluster, study, env, tmp_path, workers=1)
    loaded = optuna.load_study(study_name=study, storage=postgres_url)

    def running_past_epoch_two() -> FrozenTrial | None:
        running = loaded.get_trials(states=(TrialState.RUNNING,))
        return next((t for t in running if len(t.intermediate_values) >= 2), None)

    victim = poll(running_past_epoch_two, "a trial past its second epoch")
    signal = ["scancel", "--signal=USR2", "--batch", f"{submitted.job_id}_0"]
    subprocess.run(signal, env=slurm_cluster.env, check=True, timeout=30)

    assert wait_finished(slurm_cluster, submitted.job_id, 1) == {0: "COMPLETED"}, logs(tmp_path)
    trials = assert_budget_exact(postgres_url, study, 2)
    first = trials[victim.number]
    assert first.state == TrialState.FAIL
    assert first.user_attrs["fail_reason"].startswith("interrupted")
    retry = next(t for t in trials if victim.number in t.system_attrs.get("retry_history", []))
    assert retry.state == TrialState.COMPLETE and retry.params == first.params
    assert retry.user_attrs["resumed_from_epoch"] >= 2
    text = logs(tmp_path)
    assert "USR2 received" in text and "restart 0" in text and "restart 1" in text, text
    shown = _stdout(["scontrol", "show", "job", f"{submitted.job_id}_0"], slurm_cluster.env)
    assert "Restarts=1" in shown, shown
    assert not list((tmp_path / "artifacts").rglob("*.pt"))  # checkpoints gone with the trials


@pytest.mark.slurm
@pytest.mark.postgres
def test_cancel_stops_every_task_without_requeue(
    slurm_cluster: kit.Cluster, postgres_url: str, tmp_path: Path
) -> None:
    env = task_env(slurm_cluster, postgres_url, tmp_path / "artifacts")
    study = create_study(tmp_path, env, trials=4, epochs=30, max_train=3000)
    submitted = submit_workers(slurm_cluster, study, env, tmp_path, workers=2)
    loaded = optuna.load_study(study_name=study, storage=postgres_url)
    poll(
        lambda: len(loaded.get_trials(states=(TrialState.RUNNING,))) == 2,
        "both tasks running a trial",
    )

    slurm.cancel(submitted.job_id, env=slurm_cluster.env)

    # CANCELLED, not COMPLETING: each batch script has exited, so a requeue would show.
    assert wait_finished(slurm_cluster, submitted.job_id, 2) == {0: "CANCELLED", 1: "CANCELLED"}
    trials = loaded.get_trials()
    # Each worker stopped at an epoch boundary and put its trial back in the queue.
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 2, [(t.number, t.state.name) for t in trials]
    assert all(t.user_attrs["fail_reason"].startswith("interrupted") for t in failed)
    waiting = loaded.get_trials(states=(TrialState.WAITING,))
    retried = {n for t in waiting for n in t.system_attrs.get("retry_history", [])}
    assert {t.number for t in failed} <= retried  # queued again, for the next workers
    assert "TERM received" in logs(tmp_path)
    shown = _stdout(["scontrol", "show", "job", submitted.job_id], slurm_cluster.env)
    assert "Restarts=0" in shown and "Restarts=1" not in shown, shown


@pytest.mark.slurm
@pytest.mark.slow  # a minute: the warning comes when slurmctld next checks time limits
def test_slurm_sends_the_warning_before_the_time_limit(
    slurm_cluster: kit.Cluster, tmp_path: Path
) -> None:
    """`--signal=B:USR2@N` from Slurm itself (not scancel): the stand-in worker is stopped,
    the task requeued, and its second run (SLURM_RESTART_COUNT 1) ends the array."""
    worker = (
        'if [ "${SLURM_RESTART_COUNT:-0}" -ge 1 ]; then echo "second run"; exit 0; fi; '
        'trap "echo worker stopping; exit 0" TERM; while :; do sleep 1; done'
    )
    options = SlurmOptions(workers=1, time="00:02:00", warning_seconds=100)
    script = slurm.render_batch_script(
        "limit",
        options,
        worker_args=[],
        log_dir=tmp_path / "logs",
        command=("bash", "-c", worker, "stub"),
    )
    env = {**slurm_cluster.env, "HPO_STORAGE": "grpc://127.0.0.1:1"}
    submitted = slurm.submit(script, env=env, script_dir=tmp_path)

    assert wait_finished(slurm_cluster, submitted.job_id, 1) == {0: "COMPLETED"}
    text = logs(tmp_path)
    assert "USR2 received" in text and "worker stopping" in text and "second run" in text, text


@pytest.mark.slurm
def test_gpu_tasks_get_their_own_devices(slurm_cluster: kit.Cluster, tmp_path: Path) -> None:
    """GRES on the kit's fake devices: each task sees its own CUDA_VISIBLE_DEVICES."""
    if slurm_cluster.gpus < 2:
        pytest.skip("the cluster has fewer than 2 GRES gpus")
    echo = ("bash", "-c", 'echo "devices=$CUDA_VISIBLE_DEVICES args=$*"', "stub")
    script = slurm.render_batch_script(
        "gpu",
        SlurmOptions(workers=2, gpus_per_worker=1),
        worker_args=[],
        log_dir=tmp_path / "logs",
        command=echo,
    )
    env = {**slurm_cluster.env, "HPO_STORAGE": "grpc://127.0.0.1:1"}
    submitted = slurm.submit(script, env=env, script_dir=tmp_path)
    assert wait_finished(slurm_cluster, submitted.job_id, 2) == {0: "COMPLETED", 1: "COMPLETED"}
    text = logs(tmp_path)
    devices = sorted(line.split()[0] for line in text.splitlines() if line.startswith("devices="))
    assert devices == ["devices=0", "devices=1"], text
    assert "worker --study gpu --gpus all --worker-index 0" in text


@pytest.mark.slurm
def test_preflight_against_the_real_controller(slurm_cluster: kit.Cluster) -> None:
    url = "postgresql://u@h/db"
    slurm.preflight(
        SlurmOptions(workers=1, partition=slurm_cluster.partition), url, env=slurm_cluster.env
    )
    options = SlurmOptions(workers=1, partition="nonesuch")
    message = one_line_error(lambda: slurm.preflight(options, url, env=slurm_cluster.env))
    assert message.startswith("no Slurm partition 'nonesuch'; partitions here: ")
    assert f"{slurm_cluster.partition} (default)" in message


def _stdout(args: list[str], env: Mapping[str, str]) -> str:
    return subprocess.run(args, env=dict(env), capture_output=True, text=True, timeout=30).stdout


# ---------------------------------------------------------------- the commands, end to end


def write_study_file(folder: Path, *, trials: int, epochs: int, max_train: int) -> Path:
    path = folder / "study.toml"
    data = f'name = "rings"\nmax_train = {max_train}'
    path.write_text(study_text("slurm", SPACE, trials=trials, epochs=epochs, data=data))
    return path


def job_id_of(output: str) -> str:
    """The array's id from the line `hpo launch --slurm` prints once it is submitted."""
    for line in output.splitlines():
        if line.startswith("submitted Slurm array "):
            return line.split()[3]
    raise AssertionError(f"no 'submitted Slurm array' line in {output!r}")


@pytest.mark.slurm
@pytest.mark.postgres
def test_launch_slurm_runs_the_study_as_one_array(
    slurm_cluster: kit.Cluster, postgres_url: str, tmp_path: Path
) -> None:
    env = task_env(slurm_cluster, postgres_url, tmp_path / "artifacts")
    path = write_study_file(tmp_path, trials=6, epochs=2, max_train=300)

    result = run_hpo("launch", "study", str(path), "--slurm", "--workers", "2", env=env, cwd=REPO)

    assert result.returncode == 0, result.stdout + result.stderr
    job_id = job_id_of(result.stdout)
    assert_budget_exact(postgres_url, "slurm", 6)
    states = slurm.array_states(job_id, env=slurm_cluster.env)
    assert states == {0: "COMPLETED", 1: "COMPLETED"}
    script = next((tmp_path / "artifacts" / "slurm").glob("*.sbatch")).read_text()
    assert "--array=0-1" in script and "postgresql" not in script  # kept for audit, no secret


@pytest.mark.slurm
@pytest.mark.postgres
def test_ctrl_c_on_a_slurm_launch_cancels_the_array(
    slurm_cluster: kit.Cluster, postgres_url: str, tmp_path: Path
) -> None:
    env = task_env(slurm_cluster, postgres_url, tmp_path / "artifacts")
    path = write_study_file(tmp_path, trials=4, epochs=30, max_train=3000)
    with HpoProcesses() as processes:
        launch = processes.start(
            "launch", "study", str(path), "--slurm", "--workers", "2", env=env, cwd=REPO
        )
        job_id = poll(lambda: _submitted_line(launch), "the submitted line")
        loaded = optuna.load_study(study_name="slurm", storage=postgres_url)
        poll(lambda: len(loaded.get_trials(states=(TrialState.RUNNING,))) == 2, "2 trials")
        launch.send_signal(signal.SIGINT)
        launch.wait(ARRAY_SECONDS)
    assert launch.returncode != 0
    assert slurm.array_states(job_id, env=slurm_cluster.env) == {0: "CANCELLED", 1: "CANCELLED"}
    assert not loaded.get_trials(states=(TrialState.RUNNING,))  # each re-queued its trial


def _submitted_line(process: subprocess.Popen[str]) -> str | None:
    line = read_line(process)
    return job_id_of(line) if line.startswith("submitted Slurm array ") else None


@pytest.mark.slurm
@pytest.mark.postgres
def test_detach_then_worker_slurm_joins(
    slurm_cluster: kit.Cluster, postgres_url: str, tmp_path: Path
) -> None:
    env = task_env(slurm_cluster, postgres_url, tmp_path / "artifacts")
    path = write_study_file(tmp_path, trials=3, epochs=1, max_train=300)
    created = run_hpo("launch", "study", str(path), "--workers", "0", env=env, cwd=REPO)
    assert created.returncode == 0, created.stderr

    # Not run_hpo: on exit it kills every process that carries its tag, which sbatch exports
    # to the tasks, and a detached launch exits while they run.
    joined = subprocess.run(
        [sys.executable, "-m", "hpo", "worker", "--study", "slurm", "--slurm", "--workers", "1",
         "--detach"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert joined.returncode == 0, joined.stderr
    wait_finished(slurm_cluster, job_id_of(joined.stdout), 1)
    assert_budget_exact(postgres_url, "slurm", 3)


@pytest.mark.slurm
@pytest.mark.parametrize(
    "storage, extra, message",
    [
        ("sqlite:///{tmp}/hpo.db", [], "cannot share a SQLite storage"),
        ("POSTGRES", ["--partition", "no-such-partition"], "no-such-partition"),
        ("POSTGRES", ["--time", "forever"], "--time"),
    ],
    ids=["sqlite", "partition", "time"],
)
def test_launch_slurm_refusals_write_nothing(
    slurm_cluster: kit.Cluster,
    postgres_url: str,
    tmp_path: Path,
    storage: str,
    extra: list[str],
    message: str,
) -> None:
    url = postgres_url if storage == "POSTGRES" else storage.format(tmp=tmp_path)
    env = task_env(slurm_cluster, url, tmp_path / "artifacts")
    path = write_study_file(tmp_path, trials=2, epochs=1, max_train=300)

    result = run_hpo("launch", "study", str(path), "--slurm", "--workers", "2", *extra,
                     env=env, cwd=REPO)  # fmt: skip

    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert "Traceback" not in result.stderr
    if storage == "POSTGRES":
        assert optuna.get_all_study_summaries(postgres_url) == []
    assert not (tmp_path / "artifacts" / "slurm").exists()


def test_launch_slurm_without_sbatch_is_refused(tmp_path: Path, postgres_url: str) -> None:
    path = write_study_file(tmp_path, trials=2, epochs=1, max_train=300)
    env = {"HPO_STORAGE": postgres_url, "PATH": str(tmp_path), "PYTHONPATH": str(REPO)}
    result = run_hpo("launch", "study", str(path), "--slurm", "--workers", "2", env=env, cwd=REPO)
    assert result.returncode == 2 and "sbatch not found on PATH" in result.stderr
    assert optuna.get_all_study_summaries(postgres_url) == []


def test_slurm_options_need_slurm(tmp_path: Path) -> None:
    path = write_study_file(tmp_path, trials=2, epochs=1, max_train=300)
    result = run_hpo("launch", "study", str(path), "--partition", "gpu", cwd=tmp_path)
    assert result.returncode == 2 and "--partition needs --slurm" in result.stderr
