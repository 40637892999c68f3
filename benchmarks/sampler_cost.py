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
hpo.storage.open.open_storage ("hpo") and through a plain optuna.create_study(storage=URL)
("optuna": Optuna's own RDBStorage, no hpo wrapper). The points alternate: each round
times one suggestion of every (sampler, way), the order reversed every other round, so a
change in the shared machine's load falls on every contender alike; the hpo / Optuna ratio
is reported per round (median and range). Each timed trial is told FAIL afterwards so the
study keeps N completed trials. A suggestion is capped at --cap-seconds: one that takes
longer is abandoned and that sampler is reported "over the cap" at that size and "not
run" at every larger size (it is not run there); once a sampler has spent the cap at a
size, it sits out the remaining rounds (fewer repeats).
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
from _machine import banner, figure, fresh_postgres, load, median
from optuna.trial import TrialState, create_trial

from hpo.config.space import FixedParam
from hpo.config.spec import load_spec
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


def suggest_once(study: optuna.Study, space: dict[str, Any], cap: float) -> float:
    """Seconds for one ask + suggest-all, told FAIL afterwards (the study keeps N completed
    trials). Raises OverCap when the suggestion takes longer than `cap` seconds."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
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
        return time.perf_counter() - started
    finally:
        signal.signal(signal.SIGALRM, previous)


VIAS = ("hpo", "optuna")


def rounds_order(samplers: list[str], r: int) -> list[tuple[str, str]]:
    """The (sampler, via) points of round `r`, in the order they run: every sampler through
    hpo and through plain Optuna, the order reversed every other round (ABBA, then BAAB...)
    so that a drift in the machine's load falls on both sides alike."""
    order = [(name, via) for name in samplers for via in VIAS]
    return order if r % 2 == 0 else order[::-1]


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


Results = dict[tuple[str, int, str], list[float] | str]  # times, or why there are none


def run(
    url: str,
    backend: str,
    sizes: list[int],
    repeats: int,
    tpe_options: dict[str, Any],
    samplers: list[str],
    cap: float,
) -> Results:
    spec = load_spec(_machine.ROOT / "studies" / "digits-cnn.toml")
    space = dict(spec.space)
    storage = open_storage(url)
    rng = random.Random(0)
    study = optuna.create_study(study_name="sampler-cost", storage=storage, direction="maximize")
    factories = sampler_factories(tpe_options)
    runnable = [n for n in samplers if not isinstance(factories[n], str)]
    for name in samplers:
        if isinstance(factories[name], str):
            print(f"{backend:<11}{'':>7}{name:>8}   {factories[name]}", flush=True)
    over: dict[str, int] = {}  # sampler -> the size where one suggestion went over the cap
    results: Results = {}
    have = 0
    for n in sizes:
        started = time.perf_counter()
        fill(study, space, n - have, rng)
        have = n
        print(f"-- {n} completed trials ({time.perf_counter() - started:.0f} s to add)", flush=True)
        live = [name for name in runnable if name not in over]
        for name in runnable:
            if name in over:
                for via in VIAS:
                    results[(name, n, via)] = f"not run (over the cap at {over[name]})"
        studies = {
            (name, via): optuna.create_study(
                study_name="sampler-cost",
                storage=storage if via == "hpo" else url,
                sampler=factories[name](),  # type: ignore[operator]
                direction="maximize",
                load_if_exists=True,
            )
            for name in live
            for via in VIAS
        }
        spent = {name: 0.0 for name in live}
        times: dict[tuple[str, str], list[float]] = {key: [] for key in studies}
        # Round 0 is a warm-up, not timed (it fills each study object's trial cache, as in
        # a worker that has been running for a while); then `repeats` timed rounds.
        for r in range(repeats + 1):
            for name, via in rounds_order(live, r):
                if name in over or (r > 1 and spent[name] > cap):
                    continue  # over the cap, or this point has spent its time: fewer rounds
                try:
                    seconds = suggest_once(studies[(name, via)], space, cap)
                except OverCap:
                    over[name] = n
                    for v in VIAS:
                        results[(name, n, v)] = f"over the cap (one suggestion > {cap:g} s)"
                    continue
                spent[name] += seconds
                if r > 0:
                    times[(name, via)].append(seconds)
        for (name, via), timed in times.items():
            if name in over and over[name] == n:
                continue
            results[(name, n, via)] = timed
        for (_name, via), timed_study in studies.items():
            if via == "optuna":
                timed_study._storage._backend.engine.dispose()  # type: ignore[attr-defined]
        for name in runnable:
            for via in VIAS:
                got = results[(name, n, via)]
                if isinstance(got, str):
                    print(f"{backend:<11}{n:>7}{name:>8}{via:>8}   {got}", flush=True)
                    continue
                print(
                    f"{backend:<11}{n:>7}{name:>8}{via:>8}{1000 * median(got):>12.1f}"
                    f"{1000 * min(got):>9.1f}{1000 * max(got):>9.1f}{len(got):>4}"
                    f"   load {load()}",
                    flush=True,
                )
    storage.engine.dispose()
    return results


def ratio_cell(ours: list[float], theirs: list[float]) -> str:
    """Median ms each way, and the hpo / Optuna ratio: median and range of the per-round
    ratios (each round timed both, back to back)."""
    ratios = sorted(a / b for a, b in zip(ours, theirs, strict=False))
    a, b = 1000 * median(ours), 1000 * median(theirs)
    return f"{a:.1f} / {b:.1f} ({median(ratios):.2f}x, {ratios[0]:.2f}-{ratios[-1]:.2f})"


def summary(backend: str, results: Results, sizes: list[int], samplers: list[str]) -> None:
    print(
        f"\n{backend}: median ms per suggestion, hpo / plain Optuna "
        "(ratio: median and range over rounds)"
    )
    print(f"{'sampler':<8}" + "".join(f"{n:>34}" for n in sizes))
    for name in samplers:
        if not any((name, n, "hpo") in results for n in sizes):
            continue  # skipped (printed with its reason above)
        cells = []
        for n in sizes:
            ours, theirs = results.get((name, n, "hpo")), results.get((name, n, "optuna"))
            if isinstance(ours, str) or isinstance(theirs, str) or not ours or not theirs:
                cells.append(ours if isinstance(ours, str) else "not run")
                continue
            cells.append(ratio_cell(ours, theirs))
            ratios = [a / b for a, b in zip(ours, theirs, strict=False)]
            figure(f"sampler cost: {backend} {name} at {n} trials, hpo / Optuna", ratios, "x")
        print(f"{name:<8}" + "".join(f" {c:>33}" for c in cells))


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
    print(f"samplers: {', '.join(samplers)}; cap {args.cap_seconds:g} s a point")
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
