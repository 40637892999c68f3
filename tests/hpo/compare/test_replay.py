"""Recording learning curves and replaying search strategies against them:
hpo.compare.table, .simulator, .record, .replay and `hpo record` / `hpo compare --replay`."""

from __future__ import annotations

import csv
import math
import os
import sqlite3
from pathlib import Path

import numpy as np
import optuna
import pytest
from click.testing import CliRunner

from hpo.cli import cli
from hpo.compare.record import pick_configs
from hpo.compare.replay import replay_rows
from hpo.compare.run import derive_arms, parse_arms, plan_comparison
from hpo.compare.runs import COLUMNS
from hpo.compare.simulator import replay_study
from hpo.compare.table import GRID_META, Lookup, Run, Table, read_table, write_table
from hpo.config.spec import StudySpec, load_spec
from tests.helpers import run_hpo

GRID_WIDTHS = list(range(8, 16))  # one choices key: an 8-point grid


def study_file(root: Path, space: str, *, epochs: int = 3, name: str = "rep") -> Path:
    path = root / f"{name}.toml"
    path.write_text(
        f'[study]\nname = "{name}"\ntrials = 4\n\n[model]\nname = "mlp"\n\n'
        f'[data]\nname = "rings"\nmax_train = 200\n\n[train]\nepochs = {epochs}\n\n'
        f'[sampler]\nname = "random"\n\n[pruner]\nname = "none"\n\n[space]\n{space}\n'
        'activation = "relu"\nbatch_size = 64\n'
    )
    return path


def grid_spec(root: Path, epochs: int = 3) -> StudySpec:
    return load_spec(
        study_file(root, f"width = {{ choices = {GRID_WIDTHS} }}\nlr = 0.01", epochs=epochs)
    )


def range_spec(root: Path, epochs: int = 9) -> StudySpec:
    space = "depth = { low = 1, high = 4 }\nwidth = { low = 4, high = 64, log = true }\n"
    space += "lr = { low = 1e-4, high = 1e-1, log = true }"
    return load_spec(study_file(root, space, epochs=epochs, name="ranges"))


def grid_table(finals: list[float], epochs: int = 3, repeats: int = 1) -> Table:
    """A synthetic grid table: config i climbs to finals[i]; uneven epoch seconds."""
    runs = {}
    for i, final in enumerate(finals):
        runs[i] = [
            Run(
                tuple(final * (e + 1) / epochs for e in range(epochs)),
                tuple(1.0 + 0.1 * ((i + r + e) % 3) for e in range(epochs)),
                final,
            )
            for r in range(repeats)
        ]
    configs = {i: {"width": w} for i, w in enumerate(GRID_WIDTHS[: len(finals)])}
    return Table(configs, runs, {GRID_META: "1"})


def random_table(spec: StudySpec, n: int = 60, repeats: int = 2) -> Table:
    """Configurations of `spec`'s ranges with noisy curves and uneven seconds."""
    configs, _ = pick_configs(spec.space, n, seed=0)
    rng = np.random.default_rng(1)
    runs = {}
    for i in range(len(configs)):
        quality = rng.uniform(0.3, 1.0)
        runs[i] = [
            Run(
                tuple(
                    quality * (1 - math.exp(-(e + 1) / 3)) + rng.normal(0, 0.02)
                    for e in range(spec.train.epochs)
                ),
                tuple(rng.uniform(0.5, 2.0) for _ in range(spec.train.epochs)),
                quality,
            )
            for _ in range(repeats)
        ]
    return Table(dict(enumerate(configs)), runs, {GRID_META: "0"})


# ---------------------------------------------------------------- the table


def test_recorded_table_has_the_documented_schema(tmp_path: Path, sqlite_url: str) -> None:
    """`hpo record` trains for real (2 configs x 2 seeds, 2 epochs) and writes the table."""
    file = study_file(tmp_path, "depth = { choices = [1, 2] }\nwidth = 8\nlr = 0.01", epochs=2)
    out = tmp_path / "table.db"
    args = ["--storage", sqlite_url, "--artifacts", str(tmp_path / "art"), "record", str(file)]
    args += ["--configs", "4", "--repeats", "2", "--out", str(out)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    db = sqlite3.connect(out)
    columns = {
        table: [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
        for table in ("configs", "curves", "finals", "meta")
    }
    assert columns == {
        "configs": ["config_id", "params"],
        "curves": ["config_id", "repeat", "epoch", "value", "seconds"],
        "finals": ["config_id", "repeat", "test_accuracy"],
        "meta": ["key", "value"],
    }
    assert db.execute("SELECT params FROM configs ORDER BY config_id").fetchall() == [
        ('{"depth": 1}',),
        ('{"depth": 2}',),
    ]  # the whole grid (2 < --configs 4)
    curves = db.execute("SELECT config_id, repeat, epoch, value, seconds FROM curves").fetchall()
    assert sorted((c, r, e) for c, r, e, _, _ in curves) == [
        (c, r, e) for c in (0, 1) for r in (0, 1) for e in (1, 2)
    ]
    assert all(0 <= v <= 1 and s > 0 for *_, v, s in curves)
    # Two repeats of a config train under other seeds: their curves differ somewhere.
    by_run = {}
    for c, r, _epoch, v, _ in sorted(curves):
        by_run.setdefault((c, r), []).append(v)
    assert by_run[(0, 0)] != by_run[(0, 1)] or by_run[(1, 0)] != by_run[(1, 1)]
    finals = db.execute("SELECT config_id, repeat, test_accuracy FROM finals").fetchall()
    assert len(finals) == 4 and all(0 <= a <= 1 for *_, a in finals)
    meta = dict(db.execute("SELECT key, value FROM meta"))
    for key in ("study_file", "dataset", "split", "machine", "device", "hpo_version"):
        assert meta[key], key
    assert meta["torch_version"] and meta["dataset"] == "rings" and meta["grid"] == "1"
    assert meta["epochs"] == "2"
    assert f"{os.cpu_count()} cores, " in meta["machine"]  # the machine named, not only the OS
    assert read_table(out).grid
    db.close()
    # Run again: the studies have their budgets, nothing trains, the same table is written.
    first = read_table(out)
    again = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert read_table(out) == first
    studies = optuna.get_all_study_summaries(sqlite_url)
    assert sorted((s.study_name, s.n_trials) for s in studies) == [
        ("rep-record-r0", 2),
        ("rep-record-r1", 2),
    ]


def test_table_round_trips_and_refuses_a_non_table(tmp_path: Path) -> None:
    table = grid_table([0.5, 0.7], repeats=2)
    path = tmp_path / "t.db"
    runs = {(i, r): run for i, rs in table.runs.items() for r, run in enumerate(rs)}
    write_table(path, table.configs, runs, table.meta)
    assert read_table(path) == table
    (tmp_path / "junk.db").write_text("not sqlite")
    with pytest.raises(Exception, match="not a recorded table"):
        read_table(tmp_path / "junk.db")


def test_lookup_is_exact_on_a_grid_and_nearest_in_the_unit_cube(tmp_path: Path) -> None:
    spec = range_spec(tmp_path)
    configs = {0: {"depth": 1, "width": 4, "lr": 1e-4}, 1: {"depth": 4, "width": 64, "lr": 0.1}}
    runs = {i: [Run((0.5,), (1.0,), None)] for i in configs}
    lookup = Lookup(Table(configs, runs, {}), spec.space)
    assert lookup({"depth": 4, "width": 64, "lr": 0.1}) == 1
    # width 8 is near 4 on a log scale (1/4 of the way), lr 3e-3 past halfway on a log scale.
    assert lookup({"depth": 1, "width": 8, "lr": 3e-3}) == 0
    assert lookup({"depth": 2, "width": 40, "lr": 0.05}) == 1


# ---------------------------------------------------------------- the simulator


def test_grid_replay_matches_the_order_statistics_expectation(tmp_path: Path) -> None:
    """Random sampler, no pruner: each trial is a uniform draw (with replacement) from the
    grid, so E[best of T] = sum_k v_(k) ((k/K)^T - ((k-1)/K)^T)."""
    finals = [0.31, 0.42, 0.5, 0.55, 0.61, 0.7, 0.83, 0.9]
    table = grid_table(finals)
    spec = grid_spec(tmp_path)
    trials, seeds = 3, 300
    lookup = Lookup(table, spec.space)
    bests = []
    for arm in derive_arms(spec, parse_arms("random+none"), seeds):
        done = replay_study(table, lookup, arm.spec, trials=trials)
        bests.append(max(t.value for t in done))
    v, k = sorted(finals), len(finals)
    expected = sum(v[i] * (((i + 1) / k) ** trials - (i / k) ** trials) for i in range(k))
    standard_error = np.std(bests, ddof=1) / math.sqrt(seeds)
    assert abs(np.mean(bests) - expected) < 3 * standard_error


def test_replay_is_deterministic(tmp_path: Path) -> None:
    spec = range_spec(tmp_path)
    table = random_table(spec)
    plan = plan_comparison(spec, "random,tpe+hyperband,tpe+sha", seeds=2, trials=25)
    first = replay_rows(table, plan, spec, workers=3)
    assert first == replay_rows(table, plan, spec, workers=3)
    assert {r.state for r in first} >= {"COMPLETE", "PRUNED"}  # the pruners pruned


class SpySampler(optuna.samplers.RandomSampler):
    """Records which trials had finished when each trial was asked for."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.seen: dict[int, set[int]] = {}

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        self.seen[trial.number] = {t.number for t in finished}
        super().before_trial(study, trial)


def test_two_workers_never_show_the_sampler_an_unfinished_trial(tmp_path: Path) -> None:
    spec = range_spec(tmp_path)
    table = random_table(spec)
    spy = SpySampler()
    done = replay_study(table, Lookup(table, spec.space), spec, trials=20, workers=2, sampler=spy)
    by_number = {t.number: t for t in done}
    overlapped = 0
    for t in done:
        finished_before = {u.number for u in done if u.finish < t.start}
        assert spy.seen[t.number] <= {u.number for u in done if u.finish <= t.start}
        assert finished_before <= spy.seen[t.number]  # and it sees all that had finished
        overlapped += any(u.start < t.start < u.finish for u in done)
    assert overlapped  # the workers did run side by side
    assert [t.finish for t in done] == sorted(t.finish for t in done)
    assert set(by_number) == set(range(20))


class SpyPruner(optuna.pruners.MedianPruner):
    """Records the curve each trial had reported whenever the pruner was asked."""

    def __init__(self) -> None:
        super().__init__(n_startup_trials=2, n_warmup_steps=0)
        self.curves: dict[int, list[list[float]]] = {}

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        values = trial.intermediate_values
        self.curves.setdefault(trial.number, []).append([values[e] for e in sorted(values)])
        return super().prune(study, trial)


def test_the_pruner_receives_the_recorded_curves(tmp_path: Path) -> None:
    spec = range_spec(tmp_path)
    table = random_table(spec)
    spy = SpyPruner()
    done = replay_study(table, Lookup(table, spec.space), spec, trials=30, workers=2, pruner=spy)
    assert any(t.state == "PRUNED" for t in done)
    for t in done:
        run = table.runs[t.config_id][t.repeat]
        asked = spy.curves[t.number]
        assert asked == [list(run.values[: e + 1]) for e in range(t.epochs)]  # every epoch
        assert t.value == run.values[t.epochs - 1]
        assert t.compute == pytest.approx(sum(run.seconds[: t.epochs]))  # the epochs it ran
        assert t.finish - t.start == pytest.approx(t.compute)


# ---------------------------------------------------------------- `hpo compare --replay`


def test_compare_replay_writes_runs_csv_and_the_report(tmp_path: Path) -> None:
    spec_file = study_file(tmp_path, f"width = {{ choices = {GRID_WIDTHS} }}\nlr = 0.01")
    table = grid_table([0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9], repeats=2)
    path = tmp_path / "t.db"
    runs = {(i, r): run for i, rs in table.runs.items() for r, run in enumerate(rs)}
    write_table(path, table.configs, runs, {**table.meta, "epochs": 3})
    out = tmp_path / "out"
    args = ["compare", str(spec_file), "--replay", str(path), "--arms", "random,tpe+median"]
    args += ["--seeds", "3", "--trials", "6", "--workers", "2", "--out", str(out)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with (out / "runs.csv").open() as f:
        reader = csv.reader(f)
        assert tuple(next(reader)) == COLUMNS
        rows = list(reader)
    assert len(rows) == 2 * 3 * 6
    assert [r[0] for r in rows[:18]] == ["random"] * 18  # arm as given, seeds in order
    for arm in ("random", "tpe+median"):
        for seed in range(3):
            study = [r for r in rows if r[0] == arm and r[1] == str(seed)]
            wall = [float(r[7]) for r in study]
            compute = [float(r[6]) for r in study]
            assert wall == sorted(wall) and compute == sorted(compute)
            assert compute[-1] > wall[-1]  # two workers: more compute than wall time
    assert (out / "report.html").is_file()
    summary = (out / "summary.md").read_text()
    assert "| width | 1.000 | 1.000 |" in summary  # importances: the one searched key
    assert "median final best" in result.output


def test_replay_refuses_a_table_of_other_epochs(tmp_path: Path) -> None:
    spec_file = study_file(tmp_path, f"width = {{ choices = {GRID_WIDTHS} }}\nlr = 0.01")
    table = grid_table([0.5, 0.6])
    path = tmp_path / "t.db"
    runs = {(i, 0): rs[0] for i, rs in table.runs.items()}
    write_table(path, table.configs, runs, {"epochs": 7})
    args = ["compare", str(spec_file), "--replay", str(path), "--out", str(tmp_path / "o")]
    result = run_hpo(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "recorded with 7 epochs" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_record_refuses_more_repeats_than_configs_before_the_storage(tmp_path: Path) -> None:
    file = study_file(tmp_path, "depth = { choices = [1, 2] }\nwidth = 8\nlr = 0.01")
    storage = tmp_path / "hpo.db"
    args = ["--storage", f"sqlite:///{storage}", "record", str(file), "--configs", "2"]
    result = run_hpo(*args, "--repeats", "3", "--out", str(tmp_path / "t.db"), cwd=tmp_path)
    assert result.returncode == 2
    assert "--repeats must be in [1, 2]" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    assert not storage.exists() and not (tmp_path / "t.db").exists()


def test_sobol_configurations_cover_the_space_within_its_bounds(tmp_path: Path) -> None:
    spec = range_spec(tmp_path)
    configs, grid = pick_configs(spec.space, 64, seed=3)
    assert not grid and 40 <= len(configs) <= 64  # int keys may repeat a point: dropped
    assert configs == pick_configs(spec.space, 64, seed=3)[0]  # seeded
    lrs = sorted(c["lr"] for c in configs)
    assert lrs[0] >= 1e-4 and lrs[-1] <= 0.1
    # Log scale: about half the points below the geometric middle (3.2e-3), not 5%.
    below = sum(lr < math.sqrt(1e-4 * 0.1) for lr in lrs) / len(lrs)
    assert 0.35 < below < 0.65
    assert {c["depth"] for c in configs} == {1, 2, 3, 4}
    assert all(isinstance(c["width"], int) and 4 <= c["width"] <= 64 for c in configs)
