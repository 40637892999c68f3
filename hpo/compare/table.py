"""A recorded table of learning curves: its SQLite schema, writing, reading, and lookup.

`hpo record` trains configurations of a search space for the full epochs and writes what
every epoch measured; `hpo compare --replay` replays search strategies against it. The
file is a SQLite database whose format is stable for scripts:

    configs(config_id INTEGER PRIMARY KEY, params TEXT)   params: JSON of the searched keys
    curves(config_id, repeat, epoch, value, seconds)       epoch from 1; seconds of that epoch
    finals(config_id, repeat, test_accuracy)               the run's final test accuracy
    meta(key, value)                                       study file, data set, split, ...

Lookup (`Table.lookup`), the rule a replayed trial's configuration is found by:
- a *grid* table (every searched key a `choices` list, the whole grid recorded): the
  recorded configuration with exactly the trial's values;
- otherwise the nearest recorded configuration in the space's unit cube: an int or float
  range maps to (x - low) / (high - low), on a log scale for `log = true` ranges; a
  `choices` key gives one 0/1 coordinate per choice (so any two different choices are the
  same distance apart); Euclidean distance; ties go to the lowest config_id.
Pure Python and numpy (no torch, no Optuna): the table is plain data.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hpo.config.space import CategoricalParam, FixedParam, FloatParam, IntParam, Param
from hpo.errors import HpoError

SCHEMA = (
    "CREATE TABLE configs(config_id INTEGER PRIMARY KEY, params TEXT NOT NULL)",
    "CREATE TABLE curves(config_id INTEGER NOT NULL, repeat INTEGER NOT NULL, "
    "epoch INTEGER NOT NULL, value REAL, seconds REAL NOT NULL, "
    "PRIMARY KEY (config_id, repeat, epoch))",
    "CREATE TABLE finals(config_id INTEGER NOT NULL, repeat INTEGER NOT NULL, "
    "test_accuracy REAL, PRIMARY KEY (config_id, repeat))",
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT)",
)
GRID_META = "grid"  # meta key: "1" when the table holds the whole grid of a choices-only space


@dataclass(frozen=True)
class Run:
    """One recorded training run: a configuration under one training seed (repeat)."""

    values: tuple[float, ...]  # the metric after epoch 1, 2, ...
    seconds: tuple[float, ...]  # each epoch's training seconds
    test_accuracy: float | None


@dataclass(frozen=True)
class Table:
    configs: dict[int, dict[str, Any]]  # config_id -> searched params
    runs: dict[int, list[Run]]  # config_id -> its recorded runs (repeats), repeat order
    meta: dict[str, str]

    @property
    def grid(self) -> bool:
        return self.meta.get(GRID_META) == "1"


def canonical(params: Mapping[str, Any]) -> str:
    """The JSON text of a configuration, keys sorted: the exact-match key of a grid."""
    return json.dumps(dict(params), sort_keys=True)


def write_table(
    path: str | Path,
    configs: Mapping[int, Mapping[str, Any]],
    runs: Mapping[tuple[int, int], Run],
    meta: Mapping[str, Any],
) -> None:
    """Write a table (replacing the file); `runs` keyed by (config_id, repeat)."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    with sqlite3.connect(partial) as db:
        for statement in SCHEMA:
            db.execute(statement)
        db.executemany(
            "INSERT INTO configs VALUES (?, ?)", [(i, canonical(p)) for i, p in configs.items()]
        )
        db.executemany(
            "INSERT INTO curves VALUES (?, ?, ?, ?, ?)",
            [
                (i, r, e + 1, v, s)
                for (i, r), run in sorted(runs.items())
                for e, (v, s) in enumerate(zip(run.values, run.seconds, strict=True))
            ],
        )
        db.executemany(
            "INSERT INTO finals VALUES (?, ?, ?)",
            [(i, r, run.test_accuracy) for (i, r), run in sorted(runs.items())],
        )
        db.executemany("INSERT INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in meta.items()])
    db.close()
    partial.replace(path)  # a reader never sees half a table


def read_table(path: str | Path) -> Table:
    """Read a table; HpoError (one line) when it is missing or not a recorded table."""
    path = Path(path)
    if not path.is_file():
        raise HpoError(f"no recorded table at {path}; write one with `hpo record FILE`")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            configs = {
                int(i): json.loads(p)
                for i, p in db.execute("SELECT config_id, params FROM configs ORDER BY config_id")
            }
            points: dict[tuple[int, int], list[tuple[float, float]]] = {}
            for i, r, _, v, s in db.execute(
                "SELECT config_id, repeat, epoch, value, seconds FROM curves "
                "ORDER BY config_id, repeat, epoch"
            ):
                points.setdefault((int(i), int(r)), []).append(
                    (math.nan if v is None else float(v), float(s))
                )
            finals = {
                (int(i), int(r)): (None if a is None else float(a))
                for i, r, a in db.execute("SELECT config_id, repeat, test_accuracy FROM finals")
            }
            meta = {str(k): str(v) for k, v in db.execute("SELECT key, value FROM meta")}
        finally:
            db.close()
    except (sqlite3.DatabaseError, json.JSONDecodeError) as exc:
        raise HpoError(f"{path} is not a recorded table ({exc})") from None
    runs: dict[int, list[Run]] = {}
    for (i, r), pts in sorted(points.items()):
        run = Run(tuple(v for v, _ in pts), tuple(s for _, s in pts), finals.get((i, r)))
        runs.setdefault(i, []).append(run)
    configs = {i: p for i, p in configs.items() if i in runs}  # a config without runs: unusable
    if not configs:
        raise HpoError(f"{path} holds no recorded curves")
    return Table(configs, runs, meta)


class Lookup:
    """Finds the recorded configuration of a trial's params (the rule: module docstring)."""

    def __init__(self, table: Table, space: Mapping[str, Param]) -> None:
        self.table = table
        self.searched = {k: p for k, p in space.items() if not isinstance(p, FixedParam)}
        self.ids = sorted(table.configs)
        self.exact = {canonical(self._searched(table.configs[i])): i for i in self.ids}
        missing = [k for k in self.searched if any(k not in table.configs[i] for i in self.ids)]
        if missing:
            raise HpoError(
                f"the table does not record searched key(s) {', '.join(missing)} of this "
                "space; record it from the same study file"
            )
        self.points = np.array([self.coordinates(table.configs[i]) for i in self.ids])

    def _searched(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {k: params[k] for k in self.searched}

    def coordinates(self, params: Mapping[str, Any]) -> list[float]:
        return unit_coordinates(params, self.searched)

    def __call__(self, params: Mapping[str, Any]) -> int:
        """The config_id a trial with `params` replays."""
        key = canonical(self._searched(params))
        if key in self.exact:
            return self.exact[key]
        if self.table.grid:
            raise HpoError(f"configuration {key} is not in the grid table")
        distances = ((self.points - np.array(self.coordinates(params))) ** 2).sum(axis=1)
        return self.ids[int(np.argmin(distances))]  # argmin: the first (lowest id) on ties


def unit_coordinates(params: Mapping[str, Any], space: Mapping[str, Param]) -> list[float]:
    """A configuration's point in the unit cube of `space` (searched keys only)."""
    out: list[float] = []
    for key, param in space.items():
        value = params[key]
        if isinstance(param, CategoricalParam):
            out += [1.0 if _same(value, c) else 0.0 for c in param.choices]
        elif isinstance(param, IntParam | FloatParam):
            low, high, x = float(param.low), float(param.high), float(value)
            if param.log:
                low, high, x = math.log(low), math.log(high), math.log(x)
            out.append(0.0 if high == low else (x - low) / (high - low))
    return out


def _same(a: Any, b: Any) -> bool:
    # As JSON: a tuple equals its list, and true is not 1 (Python says it is).
    return _plain(a) == _plain(b) and isinstance(a, bool) == isinstance(b, bool)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def draw_run(table: Table, config_id: int, rng: np.random.Generator) -> tuple[int, Run]:
    """A repeat of `config_id`, uniformly at random: (repeat index, its run)."""
    runs = table.runs[config_id]
    index = int(rng.integers(len(runs)))
    return index, runs[index]
