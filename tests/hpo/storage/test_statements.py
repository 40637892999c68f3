"""A trial's cost in the storage does not grow with the study: SQL statements and rows per
trial, counted on SQLite, are the same in a 100-trial study and a 3,000-trial one. And it is
a fixed, small number of statements and transactions (raw Optuna's study.optimize issues 35
statements in 7 transactions per trial of the same objective), with no connection ping.

The 3,000-trial study is fast-forwarded: 2,000 finished trials are written with add_trials,
so that 1,000 trials of budget remain when the measured trials run. Under a design that
queued the whole budget (or re-read every finished trial per claim) its trials would read
hundreds of rows more than the small study's; nothing here asserts on timing.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from hpo.config.spec import load_spec
from hpo.runtime.worker import run_worker
from hpo.storage.open import open_storage
from hpo.study.create import open_study
from tests.helpers import with_study_lines, zero_cost

RUN = 80  # trials run in each study; the same queue top-up phases in both
WINDOW = 50  # the last WINDOW of them are counted
SLACK = 2.0  # per trial, statements or rows


@dataclass
class Counts:
    """Statements issued and ORM rows loaded on one engine, as running totals."""

    statements: int = 0
    rows: int = 0
    kinds: Counter[str] | None = None
    checkouts: int = 0  # connections taken from the pool: one per transaction or read


@pytest.fixture
def counting() -> Iterator[Any]:
    """A function that attaches counters to an engine; they are removed after the test."""
    listeners: list[tuple[Any, str, Any]] = []

    def attach(engine: sqlalchemy.Engine) -> Counts:
        counts = Counts(kinds=Counter())

        def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            counts.statements += 1
            counts.kinds[" ".join(statement.split()[:3])] += 1

        def loaded(_target: Any, _context: Any) -> None:
            counts.rows += 1

        def checkout(*_args: Any) -> None:
            counts.checkouts += 1

        for target, name, function in (
            (engine, "before_cursor_execute", before),
            (sqlalchemy.orm.Mapper, "load", loaded),
            (engine, "checkout", checkout),
        ):
            sqlalchemy.event.listen(target, name, function)
            listeners.append((target, name, function))
        return counts

    yield attach
    for target, name, function in listeners:
        sqlalchemy.event.remove(target, name, function)


def _per_trial(
    url: str, spec_path: Path, budget: int, finished: int, attach: Any
) -> tuple[float, float]:
    """(statements, rows) per trial over the last WINDOW of RUN trials of a study of `budget`
    trials of which `finished` were already done."""
    storage = open_storage(url)
    spec = load_spec(spec_path)
    if finished:
        _fast_forward(storage, spec.name, spec.direction, finished)
    open_study(storage, spec, trials=budget)
    stop = threading.Event()
    counts = attach(storage.engine)
    marks: list[tuple[int, int]] = []

    def on_trial_end() -> None:
        marks.append((counts.statements, counts.rows))
        if len(marks) == RUN:
            stop.set()

    run_worker(
        storage, spec.name, stop=stop, objective_factory=zero_cost(), on_trial_end=on_trial_end
    )
    assert len(marks) == RUN
    (s0, r0), (s1, r1) = marks[RUN - WINDOW - 1], marks[-1]
    return (s1 - s0) / WINDOW, (r1 - r0) / WINDOW


def _fast_forward(storage: Any, name: str, direction: str, finished: int) -> None:
    """Write `finished` completed trials shaped like a worker's (a param, a value, its attr)."""
    study = optuna.create_study(study_name=name, storage=storage, direction=direction)
    distribution = optuna.distributions.FloatDistribution(0.0, 1.0)
    study.add_trials(
        [
            optuna.trial.create_trial(
                state=TrialState.COMPLETE,
                value=i / finished,
                params={"x": i / finished},
                distributions={"x": distribution},
                user_attrs={"worker": "host:1"},
            )
            for i in range(finished)
        ]
    )


def test_statements_and_rows_per_trial_do_not_grow_with_the_study(
    tmp_path: Path, write_study: Any, counting: Any
) -> None:
    path = write_study("flat", trials=100)
    small = _per_trial(f"sqlite:///{tmp_path / 'small.db'}", path, 100, 0, counting)
    large = _per_trial(f"sqlite:///{tmp_path / 'large.db'}", path, 3000, 2000, counting)
    assert abs(large[0] - small[0]) <= SLACK, f"statements per trial: {small[0]} -> {large[0]}"
    assert abs(large[1] - small[1]) <= SLACK, f"rows per trial: {small[1]} -> {large[1]}"


def test_the_stop_rule_keeps_the_cost_per_trial_flat(
    tmp_path: Path, write_study: Any, counting: Any
) -> None:
    """[study] stop_after records every finished trial (a read of the study's attrs and of
    the trial, a write): the same statements in a 3,000-trial study as in a 100-trial one."""
    path = with_study_lines(write_study("stops", trials=100), "stop_after = 1000000")
    small = _per_trial(f"sqlite:///{tmp_path / 'small.db'}", path, 100, 0, counting)
    large = _per_trial(f"sqlite:///{tmp_path / 'large.db'}", path, 3000, 2000, counting)
    assert abs(large[0] - small[0]) <= SLACK, f"statements per trial: {small[0]} -> {large[0]}"
    assert abs(large[1] - small[1]) <= SLACK, f"rows per trial: {small[1]} -> {large[1]}"


# A zero-cost trial (suggest x, return it) on hpo's worker loop, when no top-up of the queue
# falls in it: (statements, connection checkouts). The claim picks, claims, beats and names
# the worker in one transaction (4 statements) and hands Optuna the trial it wrote, unread;
# the suggestion writes its param (2); the tell writes its end (4), the trial unread: three
# transactions, on SQLite each opened by a BEGIN IMMEDIATE (counted). Was 33 statements in
# 7.4 transactions, each checkout pinged on PostgreSQL.
PER_TRIAL = {"sqlite": (10 + 3, 3), "postgresql": (10, 3)}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'count.db'}"
    return request.getfixturevalue("postgres_url")


def test_a_trial_costs_a_fixed_number_of_statements_and_no_ping(
    storage_url: str, write_study: Any, counting: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpo.storage import rdb

    pings: list[int] = []
    ping = rdb._ping
    monkeypatch.setattr(rdb, "_ping", lambda connection: (pings.append(1), ping(connection)))
    storage = open_storage(storage_url)
    spec = load_spec(write_study("count", trials=40))
    open_study(storage, spec)
    counts = counting(storage.engine)
    marks: list[tuple[int, int]] = []
    run_worker(
        storage,
        spec.name,
        objective_factory=zero_cost(),
        on_trial_end=lambda: marks.append((counts.statements, counts.checkouts)),
    )
    assert len(marks) == 40
    per_trial = Counter((s1 - s0, c1 - c0) for (s0, c0), (s1, c1) in itertools.pairwise(marks[1:]))
    usual, times = per_trial.most_common(1)[0]
    assert usual == PER_TRIAL[storage_url.split(":")[0].split("+")[0]], per_trial
    assert times >= 30, per_trial  # all but the trials a top-up fell in (one in 16)
    assert pings == []  # no connection sat idle for a second


# A real short trial (the tiny rings MLP, one epoch):
# the claim; the params in one transaction (was one each); the epoch's report; the trial's
# attrs; the tell. Connection checkouts, i.e. transactions or reads (was 9).
REAL_TRIAL_CHECKOUTS = 5


def test_a_short_real_trial_takes_five_transactions(
    tmp_path: Path, write_study: Any, counting: Any
) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'real.db'}")
    spec = load_spec(write_study("real", trials=12, epochs=1))
    open_study(storage, spec)
    counts = counting(storage.engine)
    marks: list[int] = []
    run_worker(storage, spec.name, on_trial_end=lambda: marks.append(counts.checkouts))
    assert len(marks) == 12
    per_trial = Counter(b - a for a, b in itertools.pairwise(marks))
    assert per_trial.most_common(1)[0] == (REAL_TRIAL_CHECKOUTS, 11), per_trial
