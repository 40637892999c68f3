"""Sampler cost: milliseconds to suggest one full trial at 100, 1,000 and 5,000 trials.

A study in the digits-cnn search space (hpo.space.to_distribution of the study file's
entries) is filled with N completed trials at random points with random values via
study.add_trials(create_trial(...)), then one trial is asked and every parameter suggested
(ask + suggest all = what a worker does before training), repeatedly, for the random
sampler and for TPE as hpo.samplers.build_sampler configures it (multivariate, constant
liar, the study file's n_startup_trials). Each timed trial is told FAIL afterwards so the
study keeps N completed trials. Storage: SQLite file (what a user runs locally) and, with
--postgres, a fresh PostgreSQL database.

    python3 benchmarks/sampler_cost.py                   # SQLite, ~3 min on 2 cores
    python3 benchmarks/sampler_cost.py --postgres
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import _machine
import optuna
from _machine import banner, fresh_postgres, load, median
from optuna.trial import TrialState, create_trial

from hpo.samplers import build_sampler
from hpo.space import suggest_params, to_distribution
from hpo.spec import FixedParam, load_spec
from hpo.storage import open_storage

CHUNK = 500  # trials per add_trials call


def fill(study: optuna.Study, space: dict[str, Any], n: int, rng: random.Random) -> None:
    distributions = {
        name: to_distribution(p) for name, p in space.items() if not isinstance(p, FixedParam)
    }
    trials = []
    for _ in range(n):
        params: dict[str, Any] = {}
        for name, dist in distributions.items():
            if isinstance(dist, optuna.distributions.CategoricalDistribution):
                params[name] = rng.choice(dist.choices)
            elif isinstance(dist, optuna.distributions.IntDistribution):
                params[name] = rng.randint(dist.low, dist.high)
            else:
                params[name] = rng.uniform(dist.low, dist.high)
        trials.append(
            create_trial(
                state=TrialState.COMPLETE,
                value=rng.random(),
                params=params,
                distributions=distributions,
            )
        )
    for start in range(0, n, CHUNK):
        study.add_trials(trials[start : start + CHUNK])


def time_suggest(study: optuna.Study, space: dict[str, Any], repeats: int) -> list[float]:
    """Seconds per ask + suggest-all; the first (untimed) one fills the trial cache, as in a
    worker that has been running for a while."""
    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        trial = study.ask()
        suggest_params(trial, space)
        times.append(time.perf_counter() - started)
        study.tell(trial, state=TrialState.FAIL)  # keep N completed trials
    return times[1:]


def run(
    url: str, backend: str, sizes: list[int], repeats: int, tpe_options: dict[str, Any]
) -> None:
    spec = load_spec(_machine.ROOT / "studies" / "digits-cnn.toml")
    storage = open_storage(url)
    rng = random.Random(0)
    study = optuna.create_study(study_name="sampler-cost", storage=storage, direction="maximize")
    have = 0
    for n in sizes:
        fill(study, dict(spec.space), n - have, rng)
        have = n
        for name in ("random", "tpe"):
            options = tpe_options if name == "tpe" else {}
            sampler = build_sampler(name, seed=0, options=options)
            timed = optuna.load_study(study_name="sampler-cost", storage=storage, sampler=sampler)
            times = time_suggest(timed, dict(spec.space), repeats)
            print(
                f"{backend:<11}{n:>7}{name:>8}{1000 * median(times):>12.1f}"
                f"{1000 * min(times):>9.1f}{1000 * max(times):>9.1f}   load {load()}",
                flush=True,
            )
    storage.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000", help="completed trials in the study")
    parser.add_argument("--repeats", type=int, default=5, help="timed suggestions per point")
    parser.add_argument("--postgres", action="store_true", help="also on a fresh PostgreSQL DB")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", message="Heartbeat of storage")  # ask/tell, not optimize
    print(banner("sampler cost: ms per suggested trial (ask + suggest all params)"))
    spec = load_spec(_machine.ROOT / "studies" / "digits-cnn.toml")
    searched = [n for n, p in spec.space.items() if not isinstance(p, FixedParam)]
    print(f"digits-cnn space: {len(searched)} searched params ({', '.join(searched)})")
    print(f"TPE options: multivariate, constant_liar, {dict(spec.sampler.options)}")
    print(f"\n{'storage':<11}{'trials':>7}{'sampler':>8}{'median ms':>12}{'min':>9}{'max':>9}")
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="hpo-sampler-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'sampler.db'}"
        run(url, "sqlite", sizes, args.repeats, dict(spec.sampler.options))
    if args.postgres:
        with fresh_postgres() as pg_url:
            if pg_url is not None:
                run(pg_url, "postgresql", sizes, args.repeats, dict(spec.sampler.options))
    print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
