"""Start-up time of `hpo` commands that do not train, this tree against another one.

    python3 benchmarks/startup.py --before /tmp/before   # e.g. `git archive REV | tar -x`

Each command runs `--repeats` times per tree, the two trees alternating, in a fresh
interpreter (`python -m hpo ...` with the tree first on sys.path); prints the median and
the fastest run of each, and their ratio. `studies` and `best` read a SQLite file with
one small study, made beforehand by each tree itself. `launch study BAD` is a study file
that the validator refuses (an unknown data set): the time a typo costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _machine

HERE = Path(__file__).resolve().parents[1]
COMMANDS = (
    ["--help"],
    ["--version"],
    ["studies"],
    ["best", "tiny"],
    ["proxy", "--help"],
    ["launch", "study", "BAD"],
)
BAD_STUDY = '[study]\nname = "bad"\n[model]\nname = "cnn"\n[data]\nname = "digitz"\n'
REFUSED = 2  # exit status of a refused study file


def run(tree: Path, args: list[str], storage: str, bad: Path) -> float:
    """Wall seconds of one `python -m hpo ARGS` in `tree` (BAD: the refused study file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPO_")}
    env["HPO_STORAGE"] = storage
    args = [str(bad) if arg == "BAD" else arg for arg in args]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "hpo", *args], cwd=tree, env=env, capture_output=True
    )
    seconds = time.perf_counter() - started
    if done.returncode != (REFUSED if str(bad) in args else 0):
        raise SystemExit(f"{args} in {tree} exited {done.returncode}: {done.stderr[-500:]!r}")
    return seconds


def prepare(tree: Path, folder: Path) -> str:
    """A storage holding one finished tiny study, written by `tree`'s own hpo."""
    url = f"sqlite:///{folder / 'hpo.db'}"
    study = folder / "tiny.toml"
    study.write_text(
        '[study]\nname = "tiny"\ntrials = 1\n[model]\nname = "mlp"\n[data]\nname = "rings"\n'
        'max_train = 100\n[train]\nepochs = 1\n[sampler]\nname = "random"\n'
        '[pruner]\nname = "none"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPO_")}
    env["HPO_STORAGE"] = url
    subprocess.run(
        [sys.executable, "-m", "hpo", "launch", "study", str(study)],
        cwd=tree,
        env=env,
        capture_output=True,
        check=True,
    )
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the other source tree")
    parser.add_argument("--repeats", type=int, default=7, help="runs per command and tree")
    args = parser.parse_args()
    print(_machine.banner("start-up of hpo commands that do not train"))
    trees = {"before": args.before.resolve(), "after": HERE}
    with tempfile.TemporaryDirectory() as tmp:
        storages = {}
        for side, tree in trees.items():
            (Path(tmp) / side).mkdir()
            storages[side] = prepare(tree, Path(tmp) / side)
        bad = Path(tmp) / "bad.toml"
        bad.write_text(BAD_STUDY)
        print(f"{'command':<20}{'before med':>11}{'min':>7}{'after med':>11}{'min':>7}{'ratio':>8}")
        for command in COMMANDS:
            times: dict[str, list[float]] = {side: [] for side in trees}
            for repeat in range(args.repeats):
                order = list(trees) if repeat % 2 == 0 else list(reversed(trees))
                for side in order:
                    times[side].append(run(trees[side], command, storages[side], bad))
            before, after = (statistics.median(times[s]) for s in trees)
            print(
                f"{' '.join(command):<20}{before:>10.2f}s{min(times['before']):>6.2f}s"
                f"{after:>10.2f}s{min(times['after']):>6.2f}s{before / after:>7.1f}x"
            )
            pairs = [b / a for b, a in zip(times["before"], times["after"], strict=True)]
            _machine.figure(f"start-up: hpo {' '.join(command)}, before / after", pairs, "x")


if __name__ == "__main__":
    main()
