"""The shared test kit, in the manner of `optuna.testing`: small helpers for test modules.

Fixtures (study files, storages, fresh databases) live in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import platform
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.engine import make_url

if TYPE_CHECKING:  # annotations only
    import optuna
    import sqlalchemy

    from hpo.config.spec import StudySpec
    from hpo.training.checkpoint import CheckpointStore

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


def with_keep(path: Path, keep: int) -> Path:
    """The study file at `path` with `[study] keep = keep`."""
    path.write_text(path.read_text().replace("[study]\n", f"[study]\nkeep = {keep}\n", 1))
    return path


def with_study_lines(path: Path, *lines: str) -> Path:
    """The study file at `path` with `lines` (such as "stop_after = 3") added to [study]."""
    added = "".join(f"{line}\n" for line in lines)
    path.write_text(path.read_text().replace("[study]\n", f"[study]\n{added}", 1))
    return path


def with_enqueue(path: Path, *configs: Mapping[str, object]) -> Path:
    """The study file at `path` with an [[enqueue]] table per known configuration."""
    tables = "".join(
        "\n[[enqueue]]\n" + "".join(f"{key} = {_toml(value)}\n" for key, value in config.items())
        for config in configs
    )
    path.write_text(path.read_text() + tables)
    return path


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


def start_proxy(
    processes: HpoProcesses, storage_url: str, *options: str, timeout: float = WAIT_SECONDS
) -> tuple[subprocess.Popen[str], str]:
    """Start `hpo proxy` in front of `storage_url` on a free loopback port; the process and
    the grpc:// (grpcs:// with TLS `options`) URL it printed."""
    process = processes.start("proxy", "--port", "0", *options, env={"HPO_STORAGE": storage_url})
    line = read_line(process, timeout=timeout)
    url = next((word for word in line.split() if word.startswith(("grpc://", "grpcs://"))), None)
    assert url, f"no grpc:// URL in the proxy's first line: {line!r}"
    return process, url.rstrip(";")


def read_line(process: subprocess.Popen[str], *, timeout: float = WAIT_SECONDS) -> str:
    """The next line of `process`'s stdout, waiting at most `timeout` s (its stderr if it
    exits instead)."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        raise AssertionError(f"timed out after {timeout} s waiting for a line of output")
    line = process.stdout.readline()
    if not line and process.wait(timeout) is not None:
        stderr = process.stderr.read() if process.stderr else ""
        raise AssertionError(f"exited {process.returncode} before a line: {stderr[-2000:]}")
    return line.strip()


@contextlib.contextmanager
def serving_proxy(
    storage_url: str, *, heartbeat_interval: int = 1, host: str = "127.0.0.1"
) -> Iterator[str]:
    """A storage proxy (hpo.storage.proxy_server.serve_proxy) in front of `storage_url`, served
    by a thread of this process on a free port of `host`; yields its grpc:// URL, then stops."""
    from hpo.storage.proxy_server import serve_proxy
    from hpo.study.create import LOCKED_CALLS

    stop = threading.Event()
    ready: list[str] = []
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            serve_proxy(
                storage_url,
                host=host,
                port=0,
                heartbeat_interval=heartbeat_interval,
                on_ready=ready.append,
                calls=LOCKED_CALLS,
                stop=stop,
            )
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve, name="test-proxy", daemon=True)
    thread.start()
    try:

        def started() -> str | None:
            if errors:
                raise errors[0]
            return ready[0] if ready else None

        yield wait_for(started, "the proxy to listen")
    finally:
        stop.set()
        thread.join(WAIT_SECONDS)


def connections_by_application(admin: sqlalchemy.Engine, database: str) -> dict[str, int]:
    """Open PostgreSQL connections to `database` right now, by application_name (hpo names
    each of its connections `hpo host:pid`)."""
    import sqlalchemy

    query = sqlalchemy.text(
        "SELECT application_name, count(*) FROM pg_stat_activity "
        "WHERE datname = :database GROUP BY application_name"
    )
    with admin.connect() as connection:
        return dict(connection.execute(query, {"database": database}).all())


def connection_name(pid: int) -> str:
    """The application_name hpo gives the PostgreSQL connections of process `pid` here."""
    return f"hpo {platform.node()}:{pid}"[:63]


def assert_budget_accounted(study: optuna.Study, budget: int) -> list[optuna.trial.FrozenTrial]:
    """The study finished exactly `budget` counted trials, all COMPLETE; none RUNNING or
    WAITING; each trial number once. Returns every trial (superseded attempts too)."""
    from optuna.trial import TrialState

    from hpo.study.records import counted_trials

    trials = study.get_trials()
    counted = counted_trials(trials)
    assert len(counted) == budget, [(t.number, t.state.name) for t in trials]
    assert all(t.state == TrialState.COMPLETE for t in counted), [
        (t.number, t.state.name, t.user_attrs.get("fail_reason"), t.system_attrs) for t in counted
    ]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    return trials


def assert_killed_trial_resumed(
    trials: list[optuna.trial.FrozenTrial], killed_number: int, epoch: int, store: CheckpointStore
) -> None:
    """The trial whose worker was killed at checkpoint `epoch` failed, was superseded by a
    retry with the same params that resumed from at least that epoch and completed, and
    left no checkpoint behind."""
    from optuna.trial import TrialState

    from hpo.study.records import superseded_numbers

    dead = trials[killed_number]
    assert dead.state == TrialState.FAIL
    assert killed_number in superseded_numbers(trials)
    retry = next(t for t in trials if killed_number in t.system_attrs.get("retry_history", []))
    assert retry.state == TrialState.COMPLETE
    assert retry.params == dead.params
    assert retry.user_attrs["resumed_from_epoch"] >= epoch
    assert list(store.folder.iterdir()) == []


def checkpointed_victim(study: optuna.Study, store: CheckpointStore) -> tuple[int, int, int] | None:
    """(pid, trial number, checkpoint epoch) of a worker well inside a trial, for a kill:
    a RUNNING trial with a checkpoint before epoch 30; None while there is none."""
    import torch
    from optuna.trial import TrialState

    for trial in study.get_trials(states=(TrialState.RUNNING,)):
        if not store.path(trial.number).exists() or "worker" not in trial.user_attrs:
            continue
        epoch = torch.load(store.path(trial.number), weights_only=True)["epoch"]
        if epoch < 30:  # far from its end: still running when the signal lands
            return int(trial.user_attrs["worker"].rsplit(":", 1)[1]), trial.number, epoch
    return None


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


def run_main(*args: str, env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    """Run `hpo ARGS` in this process through hpo.cli.main, as the console script does, with
    no HPO_* setting but those of `env`: (exit code, stdout, stderr). Much faster than
    run_hpo once torch is loaded; an exception that main lets through (a traceback for the
    user) propagates to the test."""
    import io
    from unittest import mock

    from hpo.cli import main

    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch.dict(os.environ, hpo_env(env), clear=True),
        mock.patch.object(sys, "argv", ["hpo", *args]),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main()
            code = 0
        except SystemExit as exc:  # sys.exit() is a success, sys.exit("text") a failure
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return code, out.getvalue(), err.getvalue()


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


def assert_usage_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    """`result` is what the CLI does with bad input: exit 2, one line on stderr with
    `message` in it, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# What a user of an exported model runs: hpo.load_model on raw samples, in a fresh process.
_ACCURACY_SCRIPT = """
import json, sys
import hpo
from hpo.training.data import load_dataset
folder, data = sys.argv[1], json.loads(sys.argv[2])
test = load_dataset(data["name"], seed=data["seed"], val_fraction=data["val_fraction"]).test
assert test.norm is not None, "raw samples: an image data set"
model = hpo.load_model(folder)
print(int((model(test.x).argmax(1) == test.y).sum()) / len(test.y))
"""


def accuracy_in_fresh_process(folder: Path, data: Mapping[str, object]) -> float:
    """Test accuracy of the model exported to `folder` on the raw test images of `data`
    (the [data] of its study: name, seed, val_fraction), loaded in a fresh interpreter."""
    import json

    result = subprocess.run(
        [sys.executable, "-c", _ACCURACY_SCRIPT, str(folder), json.dumps(dict(data))],
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        env=hpo_env(),
    )
    assert result.returncode == 0, result.stderr
    return float(result.stdout.strip().splitlines()[-1])


def free_port() -> int:
    """A TCP port free on the loopback address now (a server under test binds it next)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivatePostgres:
    """A PostgreSQL server of one test's own (initdb, pg_ctl), which it may stop and start
    at will: an outage of the shared server would strike every test running beside it.

    Trust authentication on a free loopback port, its socket in its data folder. Root may
    not run PostgreSQL: as root the server runs as the `postgres` user, from a folder of
    /tmp that user can reach (a test's tmp_path is private to root).
    """

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        if os.geteuid() == 0:
            import shutil
            import tempfile

            self.owned = Path(tempfile.mkdtemp(prefix="hpo-test-pg-"))
            shutil.chown(self.owned, user="postgres")
            self.run_as = ["runuser", "-u", "postgres", "--"]
        else:
            self.owned, self.run_as = None, []
        self.data = (self.owned or folder) / "data"

    def create(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.data / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        """Stop it at once (`-m fast`: open connections are cut, as in an outage)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        """Stop it if it runs; remove the folder made for it as root."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop", check=False)
        if self.owned is not None:
            import shutil

            shutil.rmtree(self.owned, ignore_errors=True)

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        command = [*self.run_as, str(postgres_program(program)), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=WAIT_SECONDS)
        if check and result.returncode:
            raise AssertionError(f"{program} exited {result.returncode}: {result.stderr[-2000:]}")


def postgres_program(name: str) -> Path | None:
    """A PostgreSQL server program (initdb, pg_ctl): Debian keeps them out of PATH."""
    import glob
    import shutil

    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    return Path(found) if found else None


@contextlib.contextmanager
def private_postgres(folder: Path) -> Iterator[PrivatePostgres]:
    """A started PrivatePostgres (see there) for the block; removed after it, however it ends.
    Skips the test where the server programs (or, as root, the postgres user) are missing."""
    import pwd

    import pytest

    if postgres_program("initdb") is None or postgres_program("pg_ctl") is None:
        pytest.skip("needs PostgreSQL's initdb and pg_ctl (Debian: postgresql)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("as root, needs a postgres user to run a private PostgreSQL server")
    server = PrivatePostgres(folder)
    try:
        server.create()
        server.start()
        yield server
    finally:
        server.remove()


@contextlib.contextmanager
def mounted(folder: Path, *args: str) -> Iterator[Path]:
    """`mount ARGS` onto `folder` (made if absent) for the block, unmounted after: a tiny
    file system (`"-t", "tmpfs", "-o", "size=1m", "tmpfs"`) or a read-only bind of the
    folder onto itself (`"--bind", "-o", "ro", str(folder)`), which stops root too. Skips
    the test where this process may not mount (not root, a container without the right)."""
    import pytest

    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", *args, str(folder)], capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no mount command here")
    if done.returncode:
        pytest.skip(f"cannot mount here ({done.stderr.strip() or done.returncode})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, check=True)


# ---------------------------------------------------------------- property tests (hypothesis)

# Text that belongs in no study: markup, terminal control, paths, format strings, empty.
HOSTILE_TEXT = (
    "",
    " ",
    "[/]",
    "[bold red]x[/]",
    "\x1b[2J",
    "\x1b]0;owned\x07",
    "a\nb",
    "\t",
    "\x00",
    "\x7f",
    "\u202etxt",
    "💥",
    "../../etc/passwd",
    "%s%n{0}${HOME}",
)
# Numbers at and past hpo's bounds (seeds 2**31 - 1, TOML's largest integer 2**63 - 1), and
# the floats that break arithmetic.
HOSTILE_NUMBERS = (
    -1,
    0,
    10_001,
    65_537,
    2**31 - 1,
    2**31,
    2**32,
    2**63 - 1,
    -(2**63),
    10**400,  # past any float: tomllib (and JSON) read it all the same
    -0.0,
    0.5,
    1e-300,
    1e30,
    1.7e308,
    float("inf"),
    float("-inf"),
    float("nan"),
)
# What JSON holds and TOML does not: null, and integers past 64 bits.
STORED_ONLY = (None, 10**30, -(2**64))


def hostile_values(names: tuple[str, ...] = (), *, stored: bool = False) -> Any:
    """A hypothesis strategy of values where others belong: wrong types, huge and negative
    numbers, NaN and infinities, markup and control characters, lists and tables, and
    `names` (valid somewhere else); `stored`: what only a stored spec (JSON) can hold too.

    Integers are small or extreme, never a mid-range value that would be valid and slow
    (epochs = 5000): a run of the property tests stays short.
    """
    from hypothesis import strategies as st

    scalars = st.one_of(
        st.sampled_from(HOSTILE_NUMBERS + (STORED_ONLY if stored else ())),
        st.integers(-3, 3),
        st.floats(),
        st.booleans(),
        st.sampled_from(HOSTILE_TEXT + names),
        st.text(max_size=8),
    )
    nested = st.one_of(
        st.lists(scalars, max_size=3),
        st.dictionaries(st.text(max_size=6), scalars, max_size=2),
    )
    return st.one_of(scalars, scalars, nested)


def study_names() -> tuple[str, ...]:
    """Every name a study file knows: valid in one place, a wrong value in most others."""
    from hpo.config import vocabulary
    from hpo.config.spec import METRICS
    from models.vocabulary import ACTIVATION_NAMES, INITS, MODEL_NAMES, POOL_NAMES, SKIPS

    ours = (vocabulary.DATASETS, vocabulary.OPTIMIZERS, vocabulary.SCHEDULES, vocabulary.AUGMENTS)
    optuna = (vocabulary.SAMPLERS, vocabulary.PRUNERS, ("auto", "sobol", "halton"))
    models = (ACTIVATION_NAMES, INITS, MODEL_NAMES, POOL_NAMES, SKIPS, tuple(METRICS))
    return tuple(sorted({name for names in (*ours, *optuna, *models) for name in names}))


def option_defaults(section: str, name: str) -> dict[str, Any]:
    """Each option of the Optuna class behind sampler or pruner `name` that a study file can
    give (a number, a bool or a string), at Optuna's own default."""
    import inspect

    from hpo.study.samplers import build_pruner, build_sampler

    if section == "sampler":
        built: object = build_sampler(name, seed=0)
    else:
        built = build_pruner(name, max_epochs=1)
    return {
        key: p.default
        for key, p in inspect.signature(type(built)).parameters.items()
        if key != "seed" and isinstance(p.default, bool | int | float | str)
    }


def option_paths() -> tuple[tuple[str, ...], ...]:
    """The key path of every option of every sampler and pruner: ("sampler", "options", KEY)."""
    from hpo.config.vocabulary import PRUNERS, SAMPLERS

    names = [("sampler", n) for n in SAMPLERS] + [("pruner", n) for n in PRUNERS]
    keys = {
        (section, "options", key) for section, n in names for key in option_defaults(section, n)
    }
    return tuple(sorted(keys))


def space_paths() -> tuple[tuple[str, ...], ...]:
    """The key path of every search-space entry and of each field of its range."""
    from hpo.config.space import SPACE_KEYS

    fields = ((), ("low",), ("high",), ("log",), ("step",), ("choices",))
    return tuple(sorted(("space", key, *field) for key in SPACE_KEYS for field in fields))


def mutated(
    document: Mapping[str, Any],
    values: Any,
    known: tuple[tuple[str, ...], ...] = (),
    *,
    changes: int = 3,
) -> Any:
    """A hypothesis strategy of `document` with one to `changes` changes, each at a key path
    it has or at one of the `known` ones (created if missing): a value replaced by one of
    `values`, a key or whole section removed, or an unknown key added beside it."""
    import copy

    from hypothesis import strategies as st

    @st.composite
    def change(draw: Any) -> dict[str, Any]:
        result = copy.deepcopy(dict(document))
        for _ in range(draw(st.integers(1, changes))):
            # Half the changes where the document has keys: `known` may be far longer.
            own = _key_paths(result)
            use_known = known and (not own or draw(st.booleans()))
            path = draw(st.sampled_from(known if use_known else own))
            action = draw(st.sampled_from(("replace", "replace", "remove", "add unknown")))
            parent = _table_at(result, path[:-1])
            if action == "remove":
                parent.pop(path[-1], None)
            elif action == "add unknown":
                parent[draw(st.sampled_from((*HOSTILE_TEXT, "typo", "trials_")))] = draw(values)
            else:
                parent[path[-1]] = draw(values)
        return result

    return change()


def _key_paths(table: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of a nested table: ("data",), ("data", "seed"), ..."""
    paths = []
    for key, value in table.items():
        paths.append((*prefix, key))
        if isinstance(value, Mapping):
            paths += _key_paths(value, (*prefix, key))
    return paths


def _table_at(table: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """The table at `path`, made a table where it is missing or something else."""
    for key in path:
        if not isinstance(table.get(key), dict):
            table[key] = {}
        table = table[key]
    return table


def toml_text(document: Mapping[str, Any]) -> str:
    """`document` as TOML: its tables as [sections], deeper ones inline, every string
    escaped, NaN and infinities as TOML writes them (tomllib reads back the same values)."""
    lines = [
        f"{_toml_key(k)} = {_toml(v)}" for k, v in document.items() if not isinstance(v, Mapping)
    ]
    for key, table in document.items():
        if isinstance(table, Mapping):
            lines += ["", f"[{_toml_key(key)}]"]
            lines += [f"{_toml_key(k)} = {_toml(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value != value:
        return "nan"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    assert isinstance(value, list | tuple), f"no TOML for {value!r}"
    return "[" + ", ".join(_toml(v) for v in value) + "]"


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes and backslashes escaped, control characters as \\uXXXX."""
    escaped = "".join(
        f"\\{c}" if c in '"\\' else f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c
        for c in text
    )
    return f'"{escaped}"'


def _toml_key(key: str) -> str:
    bare = key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)
    return key if bare else _toml_string(key)
