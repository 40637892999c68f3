"""GPU packing: trials per hour on one GPU with K worker processes sharing it.

Small trials leave most of a GPU idle (kernel launches, not arithmetic, bound them), so
several worker processes on one GPU should finish more trials per hour; each one holds its
own copy of the data set and a capped share of the GPU's memory. For each K this runs the
real CLI on a copy of a study file (by default studies/fashion-mnist-cnn.toml) with a fixed
trial budget, sampler seed, epochs and train-set cap, in a fresh SQLite file:

    hpo --storage sqlite:///TMP/kK.db launch study COPY --gpus 0 --workers-per-gpu K

and prints, per K: wall seconds (process start-up included, as a user waits for it),
trials/hour and its ratio to K=1, the trials' states, the median final val accuracy of the
completed trials with a Mann-Whitney U test against K=1 (does packing change what the
search finds? concurrent workers see fewer finished trials when they sample and prune), and
the time from the first trial's start to the end of the study's best trial.

    python3 benchmarks/gpu_packing.py                      # K = 1, 2, 4, 8; ~6 min on an H100
    python3 benchmarks/gpu_packing.py --gpus none --ks 1,2 --trials 4 --epochs 1 \\
        --max-train 300 --max-val 300                      # CPU smoke run, ~1 min
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _machine
import optuna
from _machine import banner, median
from optuna.trial import TrialState
from scipy.stats import mannwhitneyu

STUDY_FILE = _machine.ROOT / "studies" / "fashion-mnist-cnn.toml"
STUDY_NAME = "gpu-packing"


@dataclass(frozen=True)
class Outcome:
    k: int  # worker processes on the GPU (or CPU workers with --gpus none)
    wall_seconds: float  # the launch command, start-up included
    states: Counter[str]  # finished trials by state
    accuracies: list[float]  # final val accuracy of each completed trial
    seconds_to_best: float  # first trial's start -> the best trial's end

    @property
    def trials_per_hour(self) -> float:
        return sum(self.states.values()) / self.wall_seconds * 3600


def study_copy(source: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The study of `source` with the budget, seed, epochs and caps of this benchmark."""
    study = tomllib.loads(source.read_text())
    study["study"].update(name=STUDY_NAME, trials=args.trials)
    study["study"].pop("timeout", None)
    study.setdefault("sampler", {})["seed"] = args.seed
    study.setdefault("train", {})["epochs"] = args.epochs
    data = study.setdefault("data", {})
    for key, value in (("max_train", args.max_train), ("max_val", args.max_val)):
        if value:
            data[key] = value
    return study


def to_toml(tables: dict[str, dict[str, Any]]) -> str:
    """TOML text of a study file's shape: tables of scalars, lists and inline tables."""
    lines = []
    for table, entries in tables.items():
        lines.append(f"[{table}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in entries.items()]
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for the plain names used here
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def launch(study_file: Path, url: str, k: int, gpus: str, folder: Path) -> float:
    """Run the CLI once; wall seconds. Fails loudly: a broken run is no measurement."""
    placement = ["--workers", str(k)] if gpus == "none" else ["--workers-per-gpu", str(k)]
    command = [sys.executable, "-m", "hpo", "--storage", url, "launch", "study"]
    command += [str(study_file), "--gpus", gpus, *placement]
    env = {key: value for key, value in os.environ.items() if key not in ("HPO_STORAGE",)}
    # `python -m hpo` from a checkout that is not installed (the GPU machines).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_machine.ROOT), env.get("PYTHONPATH")]))
    started = time.perf_counter()
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"K={k}: `{' '.join(command)}` failed ({result.returncode}):\n{result.stderr}")
    return seconds


def outcome(k: int, wall_seconds: float, url: str) -> Outcome:
    study = optuna.load_study(study_name=STUDY_NAME, storage=url)
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state.is_finished()]
    complete = [t for t in finished if t.state == TrialState.COMPLETE]
    to_best = float("nan")
    if complete:
        first = min(t.datetime_start for t in trials if t.datetime_start is not None)
        to_best = (study.best_trial.datetime_complete - first).total_seconds()
    return Outcome(
        k=k,
        wall_seconds=wall_seconds,
        states=Counter(t.state.name.lower() for t in finished),
        accuracies=[float(t.value) for t in complete],
        seconds_to_best=to_best,
    )


def render(outcomes: list[Outcome]) -> str:
    base = outcomes[0]
    header = (
        f"{'K':>3}{'wall s':>9}{'trials/h':>10}{'vs K=1':>8}  {'complete/pruned/fail':<22}"
        f"{'median acc':>11}{'MWU p vs K=1':>14}{'s to best':>11}"
    )
    rows = [header]
    for o in outcomes:
        states = f"{o.states['complete']}/{o.states['pruned']}/{o.states['fail']}"
        p = "-"
        if o is not base and len(o.accuracies) >= 2 and len(base.accuracies) >= 2:
            p = f"{mannwhitneyu(o.accuracies, base.accuracies).pvalue:.3f}"
        rows.append(
            f"{o.k:>3}{o.wall_seconds:>9.1f}{o.trials_per_hour:>10.0f}"
            f"{o.trials_per_hour / base.trials_per_hour:>8.2f}  {states:<22}"
            f"{median(o.accuracies):>11.4f}{p:>14}{o.seconds_to_best:>11.1f}"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", default="1,2,4,8", help="workers per GPU to compare")
    parser.add_argument("--trials", type=int, default=32, help="trial budget of each run")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial")
    parser.add_argument("--max-train", type=int, default=10000, help="train samples per trial")
    parser.add_argument("--max-val", type=int, default=2000, help="validation samples")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed of every run")
    parser.add_argument("--gpus", default="0", help="GPU index, or none: K CPU workers")
    parser.add_argument("--study", type=Path, default=STUDY_FILE, help="study file to copy")
    args = parser.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    if ks[0] != 1:
        ks = [1, *[k for k in ks if k != 1]]  # every ratio and test is against K=1
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(banner(f"GPU packing: trials/hour with K workers per GPU (--gpus {args.gpus})"))
    study = study_copy(args.study, args)
    print(
        f"study {args.study.name}: {args.trials} trials, {args.epochs} epochs, "
        f"max_train {study['data'].get('max_train')}, max_val {study['data'].get('max_val')}, "
        f"sampler {study.get('sampler', {}).get('name', 'tpe')} seed {args.seed}, "
        f"pruner {study.get('pruner', {}).get('name', 'median')}"
    )
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="hpo-packing-") as tmp:
        folder = Path(tmp)
        study_file = folder / "study.toml"
        study_file.write_text(to_toml(study))
        for k in ks:
            url = f"sqlite:///{folder / f'k{k}.db'}"
            wall = launch(study_file, url, k, args.gpus, folder)
            outcomes.append(outcome(k, wall, url))
            print(f"K={k}: {wall:.1f} s", flush=True)
    print()
    print(render(outcomes))


if __name__ == "__main__":
    main()
