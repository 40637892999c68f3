"""The shared test kit, in the manner of `optuna.testing`: small helpers for test modules.

Fixtures (study files, storages, fresh databases) live in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.engine import make_url

if TYPE_CHECKING:  # annotations only
    import optuna

    from hpo.spec import StudySpec

    ObjectiveFactory = Callable[[StudySpec, threading.Event], Callable[[optuna.Trial], float]]

T = TypeVar("T")

WAIT_SECONDS = 120  # default bound on every wait: a broken process fails a test, never hangs it
TAG_ENV = "TESTS_PROCESS_TAG"  # inherited by every descendant, so the kit finds them all


def study_text(
    name: str,
    space: str,
    *,
    trials: int = 2,
    epochs: int = 1,
    data: str = 'name = "rings"\nmax_train = 200',
    train: str = "",
    sampler: str = "random",
    pruner: str = "none",
) -> str:
    """An MLP study file with the given [space] lines (and [data], [train] lines): the
    text behind conftest.write_tiny_study, and for tests that need another space."""
    return f"""
[study]
name = "{name}"
trials = {trials}

[model]
name = "mlp"

[data]
{data}

[train]
epochs = {epochs}
{train}

[sampler]
name = "{sampler}"
seed = 0

[pruner]
name = "{pruner}"

[space]
{space}
"""


def with_password(url: str, *, password: str) -> str:
    """`url` with `password` in it.

    The test server trusts local connections, so any password is accepted: enough to check
    that hpo never shows it.
    """
    return make_url(url).set(password=password).render_as_string(hide_password=False)


def wait_for(condition: Callable[[], T | None], what: str, *, timeout: float = WAIT_SECONDS) -> T:
    """Poll `condition` until it returns something truthy, and return that.

    Fails the test after `timeout` seconds, naming `what` it waited for.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def zero_cost(
    *, value: float | None = None, fail_first: BaseException | None = None, sleep: float = 0.0
) -> ObjectiveFactory:
    """An `objective_factory` for `run_worker` whose trials train nothing.

    Each trial suggests `x` in [0, 1] and returns it, or `value` when one is given. With
    `fail_first`, trial 0 raises it instead; `sleep` seconds pass in every trial (cut short
    when the worker is asked to stop), so that trials overlap.
    """

    def factory(spec: StudySpec, stop: threading.Event) -> Callable[[optuna.Trial], float]:
        def objective(trial: optuna.Trial) -> float:
            if fail_first is not None and trial.number == 0:
                raise fail_first
            x = trial.suggest_float("x", 0.0, 1.0)
            if sleep:
                stop.wait(sleep)
            return x if value is None else value

        return objective

    return factory


def hpo_env(settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without its HPO_* settings, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPO_")}
    return {**env, **(settings or {})}


def worker_settings(url: str, artifacts: Path | None = None) -> dict[str, str]:
    """The HPO_* settings of a worker under test: storage `url`, a heartbeat every second,
    one thread; with `artifacts`, a checkpoint every epoch so that tests see one at once."""
    settings = {"HPO_STORAGE": url, "HPO_HEARTBEAT": "1", "HPO_THREADS": "1"}
    if artifacts is not None:
        settings["HPO_ARTIFACTS"] = str(artifacts)
        settings["HPO_CHECKPOINT_EVERY"] = "0"
    return settings


class HpoProcesses:
    """`hpo` commands running in the background, every one reaped when the block ends.

    `start` runs `python -m hpo ARGS` in a session of its own. Leaving the `with` block,
    passed or failed, kills each one's session and every process that inherited the block's
    tag (such as the workers a launcher starts in sessions of their own, even orphaned ones),
    then waits for each started process: nothing outlives the test.
    """

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex
        self.started: list[subprocess.Popen[str]] = []

    def __enter__(self) -> HpoProcesses:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.reap()

    def start(
        self, *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[str]:
        """Start `hpo ARGS` with no HPO_* setting inherited but those of `env`."""
        process = subprocess.Popen(
            [sys.executable, "-m", "hpo", *args],
            cwd=cwd,
            env={**hpo_env(env), TAG_ENV: self.tag},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.started.append(process)
        return process

    def finish(self, timeout: float = WAIT_SECONDS) -> list[subprocess.CompletedProcess[str]]:
        """Wait for every process started here to exit (`timeout` s each); their outputs."""
        results = []
        for process in self.started:
            out, err = process.communicate(timeout=timeout)
            results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
        return results

    def reap(self) -> None:
        """Kill what is left of every started process and its descendants; wait for each."""
        for process in self.started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # its session: pgid == pid
        for pid in tagged(self.tag):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # A kill lands asynchronously, and orphans are not ours to wait for: poll instead.
        wait_for(
            lambda: not [pid for pid in tagged(self.tag) if alive(pid)],
            "the killed processes to exit",
        )
        for process in self.started:
            process.wait()
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()


def run_hpo(
    *args: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run the real `hpo` command to its end in a fresh process, with no HPO_* settings
    inherited but those of `env`; nothing it starts outlives it."""
    with HpoProcesses() as processes:
        processes.start(*args, env=env, cwd=cwd)
        [result] = processes.finish(timeout)
    return result


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, ...); None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    return [child for child in _pids() if (_stat(child) or [None, None])[1] == str(pid)]


def alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (exited, not yet reaped) does not."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def tagged(tag: str) -> list[int]:
    """The processes whose environment holds the kit's `tag`."""
    marker = f"{TAG_ENV}={tag}".encode()
    found = []
    for pid in _pids():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(pid)
    return found
