"""Replay speed: simulated trials per second of `hpo compare --replay`, per arm and size.

A synthetic table in the Fashion-MNIST study's space (studies/fashion-mnist-cnn.toml, its
epochs set to 27 so Hyperband has rungs 1/3/9/27): 500 configurations of the scrambled Sobol
sample `hpo record` would train, 2 repeats each, noisy saturating curves and uneven epoch
seconds. Each arm is replayed (hpo.compare.replay.replay_rows: real sampler and pruner,
in-memory storage, simulated workers) for S seeds at each trial budget of --trials, timed
per arm, so the growth with trials (TPE and GP refit on every finished trial) shows. Each
arm is replayed once untimed first: its first replay pays one-off costs (imports, caches)
that made a first round up to 3x slower than the next.

    python3 benchmarks/replay_speed.py --quick      # seconds: 2 arms, 1 seed, 20/50 trials
    python3 benchmarks/replay_speed.py              # 4 arms x 3 seeds x 50/100/200 trials
    python3 benchmarks/replay_speed.py --seeds 100 --trials 200 --arms random,tpe,tpe+hyperband,gp
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

import _machine  # noqa: F401  (puts the repository on sys.path)
import numpy as np
from _machine import banner, figure

from hpo.compare.record import pick_configs
from hpo.compare.replay import replay_rows
from hpo.compare.run import plan_comparison
from hpo.compare.table import GRID_META, Run, Table
from hpo.config.spec import StudySpec, load_spec

EPOCHS = 27


def synthetic_table(spec: StudySpec, n: int, repeats: int) -> Table:
    configs, _ = pick_configs(spec.space, n, seed=0)
    rng = np.random.default_rng(0)
    runs = {}
    for i in range(len(configs)):
        quality, speed = rng.uniform(0.1, 0.92), rng.uniform(1, 10)
        runs[i] = [
            Run(
                tuple(
                    quality * (1 - math.exp(-(e + 1) / speed)) + rng.normal(0, 0.01)
                    for e in range(EPOCHS)
                ),
                tuple(rng.uniform(2.0, 6.0) for _ in range(EPOCHS)),
                quality,
            )
            for _ in range(repeats)
        ]
    return Table(dict(enumerate(configs)), runs, {GRID_META: "0"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", default="random,tpe,tpe+hyperband,gp")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", default="50,100,200", help="comma-separated budgets")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--configs", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2, help="timings of each point")
    parser.add_argument("--quick", action="store_true", help="2 arms, 1 seed, 20/50 trials")
    args = parser.parse_args()
    if args.quick:
        args.arms, args.seeds, args.trials, args.configs = "random,tpe+hyperband", 1, "20,50", 100
    spec = load_spec("studies/fashion-mnist-cnn.toml")
    spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, epochs=EPOCHS))
    table = synthetic_table(spec, args.configs, repeats=2)
    print(banner("replay speed"))
    print(
        f"table: {len(table.configs)} configs x 2 repeats x {EPOCHS} epochs; "
        f"{args.seeds} seed(s), {args.workers} simulated worker(s)"
    )
    print(f"{'arm':<16} {'trials':>6} {'seconds':>9} {'trials/s':>9}")
    for arm in args.arms.split(","):
        replay_rows(table, plan_comparison(spec, arm, seeds=1, trials=20), spec, workers=1)
        for trials in (int(t) for t in args.trials.split(",")):
            plan = plan_comparison(spec, arm, seeds=args.seeds, trials=trials)
            rates = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                rows = replay_rows(table, plan, spec, workers=args.workers)
                seconds = time.perf_counter() - started
                rates.append(len(rows) / seconds)
                print(f"{arm:<16} {trials:>6} {seconds:>9.2f} {rates[-1]:>9.1f}", flush=True)
            figure(f"replay: {arm} at {trials} trials", rates, "trials/s")


if __name__ == "__main__":
    main()
