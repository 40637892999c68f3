"""Sampler cost: milliseconds to suggest one full trial with N completed trials in the study.

A study in the digits-cnn search space (hpo.study.space.to_distribution of the study file's
entries) is filled with N completed trials at random points with random values via
study.add_trials(create_trial(...)), then one trial is asked and every parameter suggested
(ask + suggest all = what a worker does before training), repeatedly, for each sampler of
--samplers: random, TPE and GP as hpo.study.samplers.build_sampler configures them (TPE:
multivariate, constant liar, the study file's n_startup_trials) and CMA-ES
(optuna.samplers.CmaEsSampler; needs the `cmaes` package, which hpo does not list, so it is
skipped with a printed reason unless `import cmaes` works; its categoricals would go to its
independent sampler). Each point is timed twice on the same study and file: through
hpo.storage.rdb.open_storage ("hpo") and through a plain optuna.create_study(storage=URL)
("optuna": Optuna's own RDBStorage, no hpo wrapper). Each timed trial is told FAIL
afterwards so the study keeps N completed trials. A point is capped at --cap-seconds: a
suggestion that takes longer is abandoned and that sampler is reported "over the cap" at
this and every larger size; once a point has spent the cap, it stops with fewer repeats.
Storage: SQLite file (what a user runs locally) and, with --postgres, a fresh PostgreSQL
database.

    python3 benchmarks/sampler_cost.py                   # SQLite, 100 / 1,000 / 5,000
    python3 benchmarks/sampler_cost.py --sizes 1000,5000,10000 --repeats 3 --cap-seconds 60
    python3 benchmarks/sampler_cost.py --postgres
"""

from __future__ import annotations

import argparse
import random
import signal
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _machine
import optuna
from _machine import banner, fresh_postgres, load, median
from optuna.trial import TrialState, create_trial

from hpo.config.spec import FixedParam, load_spec
from hpo.storage.open import open_storage
from hpo.study.samplers import build_sampler
from hpo.study.space import suggest_params, to_distribution

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


SAMPLERS = ("random", "tpe", "gp", "cmaes")


class OverCap(Exception):
    """One suggestion took longer than the cap."""


def _alarm(signum: int, frame: object) -> None:
    raise OverCap


def time_suggest(
    study: optuna.Study, space: dict[str, Any], repeats: int, cap: float
) -> list[float]:
    """Seconds per ask + suggest-all; the first (untimed) one fills the trial cache, as in a
    worker that has been running for a while. Raises OverCap when one suggestion takes
    longer than `cap` seconds; stops early (fewer repeats) once the point has spent `cap`."""
    times: list[float] = []
    point_started = time.perf_counter()
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for _ in range(repeats + 1):
            if times and time.perf_counter() - point_started > cap:
                break
            started = time.perf_counter()
            trial = study.ask()
            try:
                signal.setitimer(signal.ITIMER_REAL, cap)
                try:
                    suggest_params(trial, space)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            finally:
                study.tell(trial, state=TrialState.FAIL)  # keep N completed trials
            times.append(time.perf_counter() - started)
    finally:
        signal.signal(signal.SIGALRM, previous)
    return times[1:] if len(times) > 1 else times


def sampler_factories(tpe_options: dict[str, Any]) -> dict[str, Callable[[], Any] | str]:
    """name -> a function building a fresh sampler, or the reason it is skipped."""
    factories: dict[str, Callable[[], Any] | str] = {
        "random": lambda: build_sampler("random", seed=0),
        "tpe": lambda: build_sampler("tpe", seed=0, options=tpe_options),
        "gp": lambda: build_sampler("gp", seed=0),
    }
    try:
        import cmaes  # noqa: F401

        # Categoricals (5 of the 11 params) go to its independent (random) sampler.
        factories["cmaes"] = lambda: optuna.samplers.CmaEsSampler(seed=0)
    except ImportError:
        factories["cmaes"] = (
            "skipped: CmaEsSampler needs the `cmaes` package, which is not installed "
            "and not a dependency of hpo"
        )
    return factories


def run(
    url: str,
    backend: str,
    sizes: list[int],
    repeats: int,
    tpe_options: dict[str, Any],
    samplers: list[str],
    cap: float,
) -> dict[tuple[str, int, str], list[float] | None]:
    spec = load_spec(_machine.ROOT / "studies" / "digits-cnn.toml")
    space = dict(spec.space)
    storage = open_storage(url)
    rng = random.Random(0)
    study = optuna.create_study(study_name="sampler-cost", storage=storage, direction="maximize")
    factories = sampler_factories(tpe_options)
    for name in samplers:
        if isinstance(factories[name], str):
            print(f"{backend:<11}{'':>7}{name:>8}   {factories[name]}", flush=True)
    over: set[str] = set()
    results: dict[tuple[str, int, str], list[float] | None] = {}
    have = 0
    for n in sizes:
        started = time.perf_counter()
        fill(study, space, n - have, rng)
        have = n
        print(f"-- {n} completed trials ({time.perf_counter() - started:.0f} s to add)", flush=True)
        for name in samplers:
            factory = factories[name]
            if isinstance(factory, str):
                continue
            for via in ("hpo", "optuna"):
                if name in over:
                    results[(name, n, via)] = None
                    print(f"{backend:<11}{n:>7}{name:>8}{via:>8}   over the cap", flush=True)
                    continue
                target: Any = storage if via == "hpo" else url
                timed = optuna.create_study(
                    study_name="sampler-cost",
                    storage=target,
                    sampler=factory(),
                    direction="maximize",
                    load_if_exists=True,
                )
                try:
                    times = time_suggest(timed, space, repeats, cap)
                except OverCap:
                    over.add(name)
                    results[(name, n, via)] = None
                    print(
                        f"{backend:<11}{n:>7}{name:>8}{via:>8}   over the cap "
                        f"(one suggestion > {cap:.0f} s)   load {load()}",
                        flush=True,
                    )
                    continue
                finally:
                    if via == "optuna":
                        timed._storage._backend.engine.dispose()  # type: ignore[attr-defined]
                results[(name, n, via)] = times
                print(
                    f"{backend:<11}{n:>7}{name:>8}{via:>8}{1000 * median(times):>12.1f}"
                    f"{1000 * min(times):>9.1f}{1000 * max(times):>9.1f}{len(times):>4}"
                    f"   load {load()}",
                    flush=True,
                )
    storage.engine.dispose()
    return results


def summary(
    backend: str,
    results: dict[tuple[str, int, str], list[float] | None],
    sizes: list[int],
    samplers: list[str],
) -> None:
    print(f"\n{backend}: median ms per suggestion, hpo / plain Optuna (ratio)")
    print(f"{'sampler':<8}" + "".join(f"{n:>26}" for n in sizes))
    for name in samplers:
        if not any((name, n, "hpo") in results for n in sizes):
            continue
        cells = []
        for n in sizes:
            ours, theirs = results.get((name, n, "hpo")), results.get((name, n, "optuna"))
            if not ours or not theirs:
                cells.append("over the cap")
                continue
            a, b = 1000 * median(ours), 1000 * median(theirs)
            cells.append(f"{a:.1f} / {b:.1f} ({a / b:.2f}x)")
        print(f"{name:<8}" + "".join(f"{c:>26}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000", help="completed trials in the study")
    parser.add_argument("--repeats", type=int, default=5, help="timed suggestions per point")
    parser.add_argument(
        "--samplers", default=",".join(SAMPLERS), help=f"subset of {','.join(SAMPLERS)}"
    )
    parser.add_argument(
        "--cap-seconds", type=float, default=120.0, help="time cap of one (sampler, size) point"
    )
    parser.add_argument("--postgres", action="store_true", help="also on a fresh PostgreSQL DB")
    args = parser.parse_args()
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    unknown = sorted(set(samplers) - set(SAMPLERS))
    if unknown:
        parser.error(f"unknown sampler(s) {', '.join(unknown)}; choose from {','.join(SAMPLERS)}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", message="Heartbeat of storage")  # ask/tell, not optimize
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    print(banner("sampler cost: ms per suggested trial (ask + suggest all params)"))
    spec = load_spec(_machine.ROOT / "studies" / "digits-cnn.toml")
    searched = [n for n, p in spec.space.items() if not isinstance(p, FixedParam)]
    print(f"digits-cnn space: {len(searched)} searched params ({', '.join(searched)})")
    print(f"TPE options: multivariate, constant_liar, {dict(spec.sampler.options)}")
    print(f"samplers: {', '.join(samplers)}; cap {args.cap_seconds:.0f} s a point")
    print(
        f"\n{'storage':<11}{'trials':>7}{'sampler':>8}{'via':>8}{'median ms':>12}"
        f"{'min':>9}{'max':>9}{'n':>4}"
    )
    sizes = [int(s) for s in args.sizes.split(",")]
    options = dict(spec.sampler.options)
    with tempfile.TemporaryDirectory(prefix="hpo-sampler-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'sampler.db'}"
        results = run(url, "sqlite", sizes, args.repeats, options, samplers, args.cap_seconds)
        summary("sqlite", results, sizes, samplers)
    if args.postgres:
        with fresh_postgres() as pg_url:
            if pg_url is not None:
                results = run(
                    pg_url, "postgresql", sizes, args.repeats, options, samplers, args.cap_seconds
                )
                summary("postgresql", results, sizes, samplers)
    print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
