"""Storage profile: SQL statements, rows, transactions and time per trial, hpo vs raw Optuna.

A zero-cost objective (tests.helpers.zero_cost: suggest x, return it) runs through hpo's own
worker loop (hpo.study.create.open_study with a budget of N, then
hpo.runtime.worker.run_worker, one worker,
in this process) and through raw Optuna (`study.optimize(n_trials=N)` on a plain RDBStorage),
on SQLite (a temp file) and PostgreSQL (a fresh database on 127.0.0.1, dropped afterwards),
for each study size N. SQLAlchemy events on `storage.engine` count, per trial: statements by
kind and table, rows (ORM objects loaded, by table; on PostgreSQL also the cursor's row
count), transactions begun and committed, connection checkouts (each one a pre-ping on hpo's
PostgreSQL pool), time inside the driver, and wall time.

Windows of trials, each measured between two trial ends so that a window holds whole
claim-run-tell cycles (the first trial of a process, which loads the study, is left out):

  early  trials 2 .. W+1            hpo: nearly the whole budget still to run
  late   the last W trials          hpo: N - W trials finished

and right before each, P trials run under cProfile with each statement attributed to the code
that issued it (those P trials are not timed). Raw Optuna always runs its whole study. hpo runs
its whole study when N <= --full-max (which also gives the study's trials/s end to end);
above that, the early window is the start of a real study of N and the late window a study
fast-forwarded to N - (1 + P + W) finished trials (written with Optuna's add_trials, each with
the param, value, user attr and system attr a real trial has), so that the 2-core budget holds.

One more variant on request (--variants): optuna-hpo-storage, raw Optuna on hpo's tuned
storage (open_storage: pre-pinged pool, retries, heartbeats). hpo holds its budget as a
rolling queue of hpo.study.create.QUEUE_DEPTH WAITING trials (--queue overrides the depth).

    python3 benchmarks/storage_profile.py                              # ~8 min on 2 cores
    python3 benchmarks/storage_profile.py --backends sqlite --sizes 100,1000
    python3 benchmarks/storage_profile.py --variants hpo,optuna-hpo-storage --queue 4
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import itertools
import os
import platform
import pstats
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _machine
import optuna
import sqlalchemy
from _machine import banner, figure, fresh_postgres, load
from optuna.trial import TrialState

from tests.helpers import zero_cost

STUDY_NAME = "storage-profile"
VARIANTS = ("hpo", "optuna", "optuna-hpo-storage")
SITE = str(Path(optuna.__file__).resolve().parent.parent)
ROOT = str(_machine.ROOT)
SKIPPED_FRAMES = ("/sqlalchemy/", "/contextlib.py", "/functools.py", "/threading.py")
NOT_COUNTED = ("BEGIN", "COMMIT", "ROLLBACK")  # transaction control: see begin/commit events
TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+\"?([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)


# --------------------------------------------------------------------------- counting


@dataclasses.dataclass
class Totals:
    """Running totals since the recorder was attached; windows are differences of these."""

    statements: Counter[str] = dataclasses.field(default_factory=Counter)  # by "KIND table"
    rows: Counter[str] = dataclasses.field(default_factory=Counter)  # ORM loads, by table
    cursor_rows: Counter[str] = dataclasses.field(default_factory=Counter)  # PG rowcount
    db_seconds: Counter[str] = dataclasses.field(default_factory=Counter)  # in the driver
    events: Counter[str] = dataclasses.field(default_factory=Counter)  # begin/commit/checkout
    callers: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)
    caller_rows: Counter[str] = dataclasses.field(default_factory=Counter)
    wall: float = 0.0  # perf_counter at the snapshot

    def copy(self) -> Totals:
        """A snapshot that later counting does not change."""
        return Totals(
            Counter(self.statements),
            Counter(self.rows),
            Counter(self.cursor_rows),
            Counter(self.db_seconds),
            Counter(self.events),
            Counter(self.callers),
            Counter(self.caller_rows),
            time.perf_counter(),
        )


@dataclasses.dataclass
class Window:
    """Per-trial figures of `trials` consecutive trials (a difference of two snapshots)."""

    name: str
    trials: int
    seconds: float
    delta: Totals

    def per_trial(self, counter: Counter[Any]) -> dict[Any, float]:
        return {key: value / self.trials for key, value in counter.items() if value}

    @property
    def statements(self) -> float:
        """SQL statements per trial; SQLite's explicit BEGIN IMMEDIATE is counted as a txn."""
        counted = (n for label, n in self.delta.statements.items() if label not in NOT_COUNTED)
        return sum(counted) / self.trials

    @property
    def rows(self) -> float:
        return sum(self.delta.rows.values()) / self.trials

    @property
    def ms(self) -> float:
        return 1000 * self.seconds / self.trials

    @property
    def db_ms(self) -> float:
        return 1000 * sum(self.delta.db_seconds.values()) / self.trials


def classify(statement: str) -> str:
    """'SELECT trials', 'INSERT trial_values', 'BEGIN', 'SELECT -' (no table) ..."""
    words = statement.split(None, 1)
    kind = words[0].upper() if words else "?"
    if kind in ("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", "SAVEPOINT", "RELEASE"):
        return kind
    match = TABLE.search(statement)
    return f"{kind} {match.group(1) if match else '-'}"


def _short(path: str) -> str:
    for prefix in (SITE + "/", ROOT + "/"):
        if path.startswith(prefix):
            return path[len(prefix) :]
    return os.path.basename(path)


def caller_of_statement() -> tuple[str, str]:
    """(storage API called, the code that called it): the first frames outside SQLAlchemy.

    The storage API is the outermost consecutive frame in optuna/storages; the caller is the
    first frame beyond it (hpo/storage/rdb.py's retry wrapper and contextlib are skipped), and
    for calls made from Optuna on hpo's behalf the first hpo frame is appended.
    """
    frame = sys._getframe(2)
    api = caller = ""
    hpo_site = ""
    while frame is not None:
        path = frame.f_code.co_filename
        where = f"{_short(path)}:{frame.f_code.co_name}"
        skipped = (
            path.startswith("<")  # SQLAlchemy's generated wrappers
            or any(part in path for part in SKIPPED_FRAMES)
            or path.endswith("hpo/storage/rdb.py")
        )
        if "/optuna/storages/" in path:
            if not caller:
                api = where
        elif not skipped:
            if not caller:
                caller = where
            elif "/hpo/" in path and not hpo_site and not caller.startswith("hpo/"):
                hpo_site = where
                break
            elif caller.startswith("hpo/"):
                break
        frame = frame.f_back
    if hpo_site:
        caller = f"{caller} < {hpo_site}"
    return api.replace("optuna/storages/", ""), caller or "(a thread of Optuna's)"


class Recorder:
    """SQLAlchemy listeners on one engine (and ORM loads) that keep a Totals."""

    def __init__(self, engine: sqlalchemy.Engine) -> None:
        self.engine = engine
        self.totals = Totals()
        self.attribute = False  # also record who issued each statement (slow: stack walks)
        self._postgres = engine.dialect.name == "postgresql"
        self._local = threading.local()
        self._listeners: list[tuple[Any, str, Callable[..., None]]] = [
            (engine, "before_cursor_execute", self._before),
            (engine, "after_cursor_execute", self._after),
            (engine, "begin", lambda *_: self._count("begin")),
            (engine, "commit", lambda *_: self._count("commit")),
            (engine, "rollback", lambda *_: self._count("rollback")),
            (engine, "checkout", lambda *_: self._count("checkout")),
            (sqlalchemy.orm.Mapper, "load", self._loaded),
        ]

    def __enter__(self) -> Recorder:
        for target, name, function in self._listeners:
            sqlalchemy.event.listen(target, name, function)
        return self

    def __exit__(self, *_exc: object) -> None:
        for target, name, function in self._listeners:
            sqlalchemy.event.remove(target, name, function)

    def _count(self, event: str) -> None:
        self.totals.events[event] += 1

    def _before(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        label = classify(statement)
        self.totals.statements[label] += 1
        self._local.started = (label, time.perf_counter())
        if self.attribute:
            api, caller = caller_of_statement()
            self._local.caller = f"{caller} -> {api}"
            self.totals.callers[(self._local.caller, label)] += 1
        else:
            self._local.caller = ""

    def _after(self, _conn: Any, cursor: Any, *_args: Any) -> None:
        label, started = self._local.started
        self.totals.db_seconds[label] += time.perf_counter() - started
        if self._postgres and label.startswith("SELECT") and cursor.rowcount > 0:
            self.totals.cursor_rows[label] += cursor.rowcount

    def _loaded(self, target: Any, _context: Any) -> None:
        table = getattr(type(target), "__tablename__", type(target).__name__)
        self.totals.rows[table] += 1
        if self.attribute and getattr(self._local, "caller", ""):
            self.totals.caller_rows[self._local.caller] += 1


def difference(name: str, before: Totals, after: Totals, trials: int) -> Window:
    """The window between two snapshots."""
    delta = Totals(
        after.statements - before.statements,
        after.rows - before.rows,
        after.cursor_rows - before.cursor_rows,
        after.db_seconds - before.db_seconds,
        after.events - before.events,
        after.callers - before.callers,
        after.caller_rows - before.caller_rows,
    )
    return Window(name, trials, after.wall - before.wall, delta)


# --------------------------------------------------------------------------- schedule


@dataclasses.dataclass
class Plan:
    """Window edges, as numbers of trials finished in this process."""

    total: int  # trials this process runs
    window: int  # W
    profiled: int  # P
    early: bool = True  # measure the early windows
    late: bool = True  # measure the late windows
    profile: bool = True  # run the profiled windows (P = 0 when False)

    def edges(self) -> dict[str, tuple[int, int]]:
        """name -> (trials finished at its start, at its end)."""
        w, p, t = self.window, self.profiled if self.profile else 0, self.total
        edges = {}
        if self.early:
            edges["early"] = (1, 1 + w)
            if p:
                edges["early-profiled"] = (1 + w, 1 + w + p)
        if self.late:
            if p:
                edges["late-profiled"] = (t - w - p, t - w)
            edges["late"] = (t - w, t)
        return edges


def fit_windows(size: int, args: argparse.Namespace) -> tuple[int, int]:
    """W and P for a study of `size`, shrunk so that its early and late windows do not overlap
    (P = 0 at sizes that are not profiled)."""
    window, profiled = args.window, args.profiled if size in args.profile_sizes else 0
    room = (size - 1) // 2
    if not profiled:
        return min(window, room), 0
    profiled = min(profiled, max(2, room // 3))
    window = min(window, max(2, room - profiled))
    return window, profiled


class Session:
    """Counts a run: snapshots at every trial end, profiles and attributes inside windows."""

    def __init__(self, recorder: Recorder, plan: Plan, stop: threading.Event) -> None:
        self.recorder = recorder
        self.plan = plan
        self.stop = stop
        self.finished = 0
        self.snapshots: dict[int, Totals] = {}
        self.profiles: dict[str, cProfile.Profile] = {}
        self.started = time.perf_counter()
        self.ended = self.started
        self._edges = plan.edges()
        self._active: cProfile.Profile | None = None

    def on_trial_end(self, *_args: Any) -> None:
        """Called after each trial's tell (run_worker's on_trial_end, optimize's callback)."""
        self.finished += 1
        self.ended = time.perf_counter()
        if self._active is not None and any(
            name.endswith("profiled") and end == self.finished
            for name, (_, end) in self._edges.items()
        ):
            self._active.disable()
            self._active = None
            self.recorder.attribute = False
        if any(self.finished in edge for edge in self._edges.values()):
            self.snapshots[self.finished] = self.recorder.totals.copy()
        for name, (start, _) in self._edges.items():
            if name.endswith("profiled") and start == self.finished:
                self.recorder.attribute = True
                self._active = self.profiles[name] = cProfile.Profile()
                self._active.enable()
        if self.finished >= self.plan.total:
            self.stop.set()

    def whole_run(self) -> tuple[int, float]:
        """(trials, seconds) of the whole run, the profiled windows' trials left out."""
        trials, seconds = self.finished, self.ended - self.started
        for name, window in self.windows().items():
            if name.endswith("profiled"):
                trials -= window.trials
                seconds -= window.seconds
        return trials, seconds

    def windows(self) -> dict[str, Window]:
        """Every window whose both edges were reached."""
        found = {}
        for name, (start, end) in self._edges.items():
            if start in self.snapshots and end in self.snapshots and end > start:
                found[name] = difference(
                    name, self.snapshots[start], self.snapshots[end], end - start
                )
        return found


# --------------------------------------------------------------------------- runs


@dataclasses.dataclass
class Result:
    """One variant at one size on one backend."""

    backend: str
    variant: str
    size: int
    mode: str  # "full" (the whole study run) or "windows" (early run + fast-forwarded late)
    setup_seconds: float  # open_study / create_study (+ fast-forward), not in any window
    run_trials: int  # trials of the whole run, when mode is full
    run_seconds: float
    windows: dict[str, Window]
    profiles: dict[str, cProfile.Profile]
    states: Counter[str]

    @property
    def per_s(self) -> float:
        return self.run_trials / self.run_seconds if self.run_seconds > 0 else float("nan")


def study_spec(size: int) -> Any:
    """digits-cnn's spec with a random sampler and no pruner (as benchmarks/scaling.py)."""
    from hpo.config.spec import load_spec

    spec = load_spec(_machine.ROOT / "studies" / "digits-cnn.toml")
    return dataclasses.replace(
        spec,
        name=STUDY_NAME,
        trials=size,
        sampler=dataclasses.replace(spec.sampler, name="random", options={}),
        pruner=dataclasses.replace(spec.pruner, name="none", options={}),
    )


def objective_factory(kind: str) -> ObjectiveFactory:
    """`x`: tests.helpers.zero_cost (one param); `space`: the study's whole search space
    (11 params of digits-cnn, as benchmarks/scaling.py), returning a constant."""
    if kind == "x":
        return zero_cost()

    def factory(spec: Any, _stop: threading.Event) -> Callable[[optuna.Trial], float]:
        from hpo.study.space import suggest_params

        def objective(trial: optuna.Trial) -> float:
            suggest_params(trial, spec.space)
            return float(trial.number % 7)

        return objective

    return factory


def fast_forward(storage: optuna.storages.BaseStorage, finished: int, kind: str) -> None:
    """Write `finished` COMPLETE trials shaped like the ones hpo's worker leaves behind.

    Their params come from one trial of the same objective in a throwaway in-memory study.
    """
    scratch = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    scratch.optimize(objective_factory(kind)(study_spec(finished), threading.Event()), n_trials=1)
    template = scratch.trials[0]
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, direction="maximize")
    worker = f"{platform.node()}:{os.getpid()}"
    study.add_trials(
        [
            optuna.trial.create_trial(
                state=TrialState.COMPLETE,
                value=(i % 97) / 97,
                params=template.params,
                distributions=template.distributions,
                user_attrs={"worker": worker},
                system_attrs={"fixed_params": {}},
            )
            for i in range(finished)
        ]
    )


def run_hpo_part(
    url: str, size: int, plan: Plan, forward: int, kind: str
) -> tuple[Session, float, Counter[str]]:
    """open_study(size) (after `forward` finished trials), then run_worker until plan.total."""
    from hpo.runtime.worker import run_worker
    from hpo.storage.open import open_storage
    from hpo.study.create import open_study

    storage = open_storage(url)
    try:
        started = time.perf_counter()
        if forward:
            fast_forward(storage, forward, kind)
        study = open_study(storage, study_spec(size), trials=size)
        setup = time.perf_counter() - started
        stop = threading.Event()
        with Recorder(storage.engine) as recorder:
            session = Session(recorder, plan, stop)
            run_worker(
                storage,
                STUDY_NAME,
                stop=stop,
                objective_factory=objective_factory(kind),
                on_trial_end=session.on_trial_end,
            )
        states = Counter(t.state.name for t in study.get_trials(deepcopy=False))
    finally:
        storage.engine.dispose()
    return session, setup, states


def run_hpo(url_factory: UrlFactory, backend: str, size: int, args: argparse.Namespace) -> Result:
    """hpo's worker loop: the whole study, or (above --full-max) an early and a late part."""
    window, profiled = fit_windows(size, args)
    profile = size in args.profile_sizes
    if size <= args.full_max:
        with url_factory() as url:
            plan = Plan(size, window, profiled, profile=profile)
            session, setup, states = run_hpo_part(url, size, plan, 0, args.objective)
        return Result(
            backend,
            "hpo",
            size,
            "full",
            setup,
            *session.whole_run(),
            session.windows(),
            session.profiles,
            states,
        )
    windows: dict[str, Window] = {}
    profiles: dict[str, cProfile.Profile] = {}
    states: Counter[str] = Counter()
    setup = 0.0
    with url_factory() as url:
        plan = Plan(1 + window + profiled, window, profiled, late=False, profile=profile)
        session, seconds, part_states = run_hpo_part(url, size, plan, 0, args.objective)
    setup += seconds
    windows.update(session.windows())
    profiles.update(session.profiles)
    states.update(part_states)
    with url_factory() as url:
        plan = Plan(1 + window + profiled, window, profiled, early=False, profile=profile)
        session, seconds, _ = run_hpo_part(url, size, plan, size - plan.total, args.objective)
    setup += seconds
    windows.update(session.windows())
    profiles.update(session.profiles)
    return Result(backend, "hpo", size, "windows", setup, 0, 0.0, windows, profiles, states)


def run_optuna(
    url_factory: UrlFactory, backend: str, size: int, args: argparse.Namespace, hpo_storage: bool
) -> Result:
    """Raw Optuna: create_study + optimize(n_trials=size) on a plain (or hpo's) storage."""
    from hpo.storage.open import open_storage
    from hpo.storage.rdb import normalize_url

    window, profiled = fit_windows(size, args)
    objective = objective_factory(args.objective)(study_spec(size), threading.Event())
    with url_factory() as url:
        if hpo_storage:
            storage: optuna.storages.RDBStorage = open_storage(url)
        else:
            storage = optuna.storages.RDBStorage(normalize_url(url))
        try:
            started = time.perf_counter()
            study = optuna.create_study(
                study_name=STUDY_NAME,
                storage=storage,
                direction="maximize",
                sampler=optuna.samplers.RandomSampler(seed=0),
            )
            setup = time.perf_counter() - started
            with Recorder(storage.engine) as recorder:
                plan = Plan(size, window, profiled, profile=size in args.profile_sizes)
                session = Session(recorder, plan, threading.Event())
                study.optimize(objective, n_trials=size, callbacks=[session.on_trial_end])
            states = Counter(t.state.name for t in study.get_trials(deepcopy=False))
        finally:
            storage.engine.dispose()
    variant = "optuna-hpo-storage" if hpo_storage else "optuna"
    return Result(
        backend,
        variant,
        size,
        "full",
        setup,
        *session.whole_run(),
        session.windows(),
        session.profiles,
        states,
    )


UrlFactory = Callable[[], contextlib.AbstractContextManager[str]]
ObjectiveFactory = Callable[[Any, threading.Event], Callable[[optuna.Trial], float]]


def url_factory_for(backend: str, tmp: Path) -> UrlFactory:
    """A context manager factory giving a fresh, empty storage URL each time."""
    counter = iter(range(10**9))

    @contextlib.contextmanager
    def sqlite() -> Iterator[str]:
        path = tmp / f"profile-{next(counter)}.db"
        yield f"sqlite:///{path}"
        for suffix in ("", "-wal", "-shm", "-lock"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    @contextlib.contextmanager
    def postgres() -> Iterator[str]:
        with fresh_postgres() as url:
            if url is None:
                raise RuntimeError("PostgreSQL is not reachable at 127.0.0.1:5432")
            yield url

    return sqlite if backend == "sqlite" else postgres


# --------------------------------------------------------------------------- output


def summary_line(result: Result) -> str:
    """One line per run: end-to-end trials/s and the per-trial figures of each window."""
    head = f"  {result.backend:<10} {result.variant:<19} N={result.size:<6}"
    if result.mode == "full":
        head += f" whole study {result.per_s:6.1f} trials/s ({result.run_trials} in "
        head += f"{result.run_seconds:.1f} s),"
    else:
        head += " windows only (no whole run),"
    head += f" setup {result.setup_seconds:.1f} s"
    parts = [head]
    for name in ("early", "late"):
        window = result.windows.get(name)
        if window is not None:
            events = window.per_trial(window.delta.events)
            parts.append(
                f"    {name:<5} W={window.trials:<3} {window.ms:7.1f} ms/trial "
                f"({1000 / window.ms:6.1f}/s), driver {window.db_ms:6.1f} ms, "
                f"{window.statements:5.1f} stmts, {events.get('begin', 0):4.1f} txns, "
                f"{events.get('commit', 0):4.1f} commits, "
                f"{events.get('checkout', 0):4.1f} checkouts, {window.rows:7.1f} rows"
            )
    return "\n".join(parts)


def _cell(statements: float, rows: float) -> str:
    return f"{statements:5.2f}" + (f" r{rows:<7.0f}" if rows else " " * 9)


def statement_table(results: list[Result], window_name: str) -> list[str]:
    """Statements per trial by kind and table (rows per trial beside them), sizes as columns.

    Rows are the cursor's row count on PostgreSQL; on SQLite, the ORM objects loaded from
    the table the statement reads (an estimate when several statements read one table).
    """
    lines = []
    windows = [(r, r.windows[window_name]) for r in results if window_name in r.windows]
    if not windows:
        return lines
    labels: Counter[str] = Counter()
    for _, window in windows:
        labels.update(window.per_trial(window.delta.statements))
    header = f"    {'statement':<34}" + "".join(f"{'N=' + str(r.size):>15}" for r, _ in windows)
    lines.append(header)
    for label, _ in sorted(labels.items(), key=lambda item: (-item[1], item[0])):
        cells = []
        for _, window in windows:
            count = window.delta.statements.get(label, 0) / window.trials
            rows = _rows_of(window, label)
            cells.append(f"{_cell(count, rows):>15}")
        lines.append(f"    {label:<34}" + "".join(cells))
    lines.append(
        f"    {'all (BEGIN left out)':<34}"
        + "".join(f"{_cell(w.statements, w.rows):>15}" for _, w in windows)
    )
    return lines


def _rows_of(window: Window, label: str) -> float:
    if window.delta.cursor_rows:
        return window.delta.cursor_rows.get(label, 0) / window.trials
    kind, _, table = label.partition(" ")
    if kind != "SELECT" or not table:
        return 0.0
    readers = sum(
        count for other, count in window.delta.statements.items() if other == f"SELECT {table}"
    )
    return window.delta.rows.get(table, 0) / window.trials if readers else 0.0


def caller_table(window: Window, top: int) -> list[str]:
    """Who issued the statements of a profiled window: per caller, statements per trial."""
    by_caller: Counter[str] = Counter()
    kinds: dict[str, Counter[str]] = {}
    for (caller, label), count in window.delta.callers.items():
        by_caller[caller] += count
        kinds.setdefault(caller, Counter())[label] += count
    lines = [f"    {'stmts/trial':>11} {'rows/trial':>10}  caller -> storage API  [statements]"]
    for caller, count in by_caller.most_common(top):
        rows = window.delta.caller_rows.get(caller, 0) / window.trials
        detail = ", ".join(
            f"{label} {n / window.trials:.2g}" for label, n in kinds[caller].most_common(4)
        )
        lines.append(f"    {count / window.trials:11.2f} {rows:10.1f}  {caller}  [{detail}]")
    return lines


def profile_table(profile: cProfile.Profile, trials: int, top: int) -> list[str]:
    """The top functions by cumulative time, per trial (this script's own frames left out)."""
    raw: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    entries = []
    for (path, line, function), (_, calls, tottime, cumtime, _) in raw.items():
        if path.endswith("storage_profile.py") or function == "<module>":
            continue
        where = f"{_short(path)}:{line}({function})" if line else function
        entries.append((cumtime, tottime, calls, where))
    entries.sort(reverse=True)
    lines = [f"    {'calls/trial':>11} {'tottime ms':>10} {'cumtime ms':>10}  function (per trial)"]
    for cumtime, tottime, calls, where in entries[:top]:
        lines.append(
            f"    {calls / trials:11.1f} {1000 * tottime / trials:10.2f} "
            f"{1000 * cumtime / trials:10.2f}  {where}"
        )
    return lines


def report(results: list[Result], args: argparse.Namespace) -> None:
    """Statement tables per backend, variant and window; callers and profiles of the largest."""
    for backend in args.backends.split(","):
        for variant in args.variants.split(","):
            chosen = [r for r in results if (r.backend, r.variant) == (backend, variant)]
            for window_name in ("early", "late"):
                table = statement_table(chosen, window_name)
                if table:
                    print(
                        f"\n  {backend} / {variant} / {window_name} window: statements per trial"
                        " (r: rows per trial)"
                    )
                    print("\n".join(table))
    for result in results:
        for name in ("early-profiled", "late-profiled"):
            window = result.windows.get(name)
            if window is None:
                continue
            title = f"{result.backend} / {result.variant} / N={result.size} / {name}"
            print(f"\n  callers, {title} ({window.trials} trials)")
            print("\n".join(caller_table(window, args.top)))
            if name in result.profiles:
                print(f"\n  cProfile by cumulative time, {title}")
                print("\n".join(profile_table(result.profiles[name], window.trials, args.top)))


def figures(results: list[Result]) -> None:
    """hpo's whole-study trials/s over each other variant's, round by round (runs in order)."""
    keys = dict.fromkeys((r.backend, r.size) for r in results if r.mode == "full")
    for backend, size in keys:
        runs = [r for r in results if (r.backend, r.size, r.mode) == (backend, size, "full")]
        ours = [r.per_s for r in runs if r.variant == "hpo"]
        for other in dict.fromkeys(r.variant for r in runs if r.variant != "hpo"):
            theirs = [r.per_s for r in runs if r.variant == other]
            ratios = [a / b for a, b in zip(ours, theirs, strict=False) if b > 0]
            figure(f"storage: {backend} N={size}, hpo / {other} trials/s", ratios, "x")
        for variant in dict.fromkeys(r.variant for r in runs):
            late = [r.windows["late"].statements for r in runs if r.variant == variant
                    and "late" in r.windows]  # fmt: skip
            figure(f"storage: {backend} N={size}, {variant} statements/trial", late)


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,3000", help="comma list of study sizes N")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--variants", default="hpo,optuna", help=f"comma list of {VARIANTS}")
    parser.add_argument("--window", type=int, default=50, help="W: trials per measured window")
    parser.add_argument("--profiled", type=int, default=20, help="P: trials per profiled window")
    parser.add_argument(
        "--full-max", type=int, default=1000, help="largest N for which hpo runs the whole study"
    )
    parser.add_argument(
        "--objective",
        choices=("x", "space"),
        default="x",
        help="x: tests.helpers.zero_cost (1 param); space: digits-cnn's 11 params",
    )
    parser.add_argument(
        "--profile-sizes",
        default="",
        help="comma list of sizes to profile and attribute (default: the largest size)",
    )
    parser.add_argument(
        "--queue", type=int, default=0, help="hpo's WAITING queue depth [default: QUEUE_DEPTH]"
    )
    parser.add_argument("--top", type=int, default=25, help="lines of each profile/caller table")
    parser.add_argument(
        "--rounds", type=int, default=1, help="runs of each variant, the order reversed every other"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    chosen = args.profile_sizes.split(",") if args.profile_sizes else [max(sizes)]
    args.profile_sizes = {int(s) for s in chosen}
    return args


def main() -> None:
    args = parse_args()
    import torch

    torch.set_num_threads(1)  # as a worker runs (HPO_THREADS=1)
    print(banner("storage profile: statements, rows and time per trial, hpo vs raw Optuna"))
    print(
        f"sizes {args.sizes}; window W={args.window}, profiled P={args.profiled}; hpo runs "
        f"whole studies up to N={args.full_max}; objective {args.objective}; profiled at "
        f"N in {sorted(args.profile_sizes)}; whole-study trials/s leave the profiled trials out"
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import hpo.study.create

    if args.queue:
        hpo.study.create.QUEUE_DEPTH = args.queue
    print(f"hpo queue depth {hpo.study.create.QUEUE_DEPTH}")
    sizes = [int(s) for s in args.sizes.split(",")]
    results: list[Result] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hpo-storage-profile-") as tmp:
        for backend in args.backends.split(","):
            factory = url_factory_for(backend, Path(tmp))
            variants = args.variants.split(",")
            for round_index, size in itertools.product(range(args.rounds), sizes):
                for variant in variants if round_index % 2 == 0 else variants[::-1]:
                    if variant == "hpo":
                        result = run_hpo(factory, backend, size, args)
                    else:
                        result = run_optuna(
                            factory, backend, size, args, variant == "optuna-hpo-storage"
                        )
                    results.append(result)
                    print(
                        summary_line(result),
                        f"\n    trial states{' (early part)' if result.mode == 'windows' else ''} "
                        f"{dict(result.states)}; load {load()}",
                        flush=True,
                    )
    report(results, args)
    figures(results)
    print(f"\nload average at end: {load()}; whole script {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
