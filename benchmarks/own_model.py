"""Trials per second of an own network ([model] entry) vs the same network built in.

One in-process worker (hpo.runtime.worker.run_worker, the real training objective) runs a
study of TRIALS 1-epoch trials on digits, on a fresh SQLite file per run: the built-in
`mlp` (depth 2, width W) and an own module (benchmarks' OWN_MLP, written with models'
public helpers) that builds the same layers (the parameter counts are checked equal),
alternating ABAB for ROUNDS rounds. What differs is hpo's path for an own network: its
module looked up and its build called per trial, and the memory guard's meta trace, which
is cached for built-in models but not for own ones. Reported: trials/s of each run, and
the ratio own / built-in per round (median, min-max).

    python3 benchmarks/own_model.py           # ~3 min on 2 cores
    python3 benchmarks/own_model.py --quick   # ~30 s: a smoke run
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import _machine
from _machine import banner, figure, median

from hpo.config.spec import load_spec
from hpo.runtime.worker import run_worker
from hpo.storage.open import open_storage
from hpo.study.create import open_study

OWN_MLP = '''
from torch import nn

from models import create_act, create_init


def build(input_shape, num_classes, *, depth=2, width=32, activation="relu", init="default"):
    """The built-in mlp without skips, BatchNorm or dropout: Flatten, (Linear, act) x depth,
    a Linear head."""
    features = 1
    for size in input_shape:
        features *= size
    layers = [nn.Flatten()]
    for _ in range(depth):
        layers += [nn.Linear(features, width), create_act(activation)]
        features = width
    layers.append(nn.Linear(features, num_classes))
    return create_init(init, activation)(nn.Sequential(*layers))
'''

STUDY = """
[study]
name = "{name}"
trials = {trials}
keep = 0
[model]
{model}
[data]
name = "digits"
[train]
epochs = 1
[sampler]
name = "random"
seed = 0
[pruner]
name = "none"
[space]
depth = 2
width = {width}
activation = {{ choices = ["relu", "tanh"] }}
init = {{ choices = ["default", "he_normal"] }}
lr = {{ low = 1e-3, high = 1e-1, log = true }}
batch_size = 128
"""
MODELS = {"built-in": 'name = "mlp"', "own": 'entry = "own_mlp_bench:build"'}


def one_run(kind: str, folder: Path, trials: int, width: int) -> tuple[float, int]:
    """(trials per second of the worker, parameters of the first trial's network)."""
    (folder / "own_mlp_bench.py").write_text(OWN_MLP, encoding="utf-8")
    file = folder / f"{kind}.toml"
    name = kind.replace("-", "")
    file.write_text(STUDY.format(name=name, trials=trials, model=MODELS[kind], width=width))
    spec = load_spec(file)
    if spec.entry is not None:  # as `hpo launch` does: the source hash stored with the spec
        from hpo.training.modelentry import with_source

        spec = with_source(spec)
    storage = open_storage(f"sqlite:///{folder / (name + '.db')}")
    study = open_study(storage, spec)
    started = time.perf_counter()
    report = run_worker(storage, name, stop=threading.Event())
    seconds = time.perf_counter() - started
    assert report.trials == trials, report.states
    return trials / seconds, int(study.trials[0].user_attrs["n_params"])


def print_build_costs(width: int, calls: int = 50) -> None:
    """What hpo does per trial before training, for each kind: the memory guard's estimate
    (a meta-device trace; cached for built-in models) and the build, in ms per trial."""
    from hpo.training.memory import check_fits
    from hpo.training.modelentry import create_network

    params = {"depth": 2, "width": width, "activation": "relu", "init": "he_normal"}
    print(f"\nper trial before training, median of {calls} calls (ms):")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "own_mlp_bench.py").write_text(OWN_MLP, encoding="utf-8")
        for kind, model in MODELS.items():
            file = folder / f"{kind}.toml"
            file.write_text(STUDY.format(name="x", trials=1, model=model, width=width))
            spec = load_spec(file)
            guard, build = [], []
            for _ in range(calls):
                started = time.perf_counter()
                check_fits(spec, {**params, "batch_size": 128}, (1, 8, 8), 10, "cpu")
                guard.append(time.perf_counter() - started)
                started = time.perf_counter()
                create_network(spec, (1, 8, 8), 10, params)
                build.append(time.perf_counter() - started)
            print(
                f"{kind:>8}: memory guard {1000 * median(guard):.2f}, "
                f"build {1000 * median(build):.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30, help="trials per run")
    parser.add_argument("--rounds", type=int, default=4, help="ABAB rounds (built-in, own)")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="8 trials, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.rounds = 8, 2
    print(banner("own_model: an own network vs the same network built in"))
    print(
        f"{args.trials} 1-epoch digits trials per run (mlp depth 2, width {args.width}), "
        f"{args.rounds} rounds, alternating ABAB, SQLite, one in-process worker"
    )
    for kind in MODELS:  # warm-up, not counted: imports, first allocations, caches
        with tempfile.TemporaryDirectory() as tmp:
            one_run(kind, Path(tmp), 2, args.width)
    rates: dict[str, list[float]] = {kind: [] for kind in MODELS}
    sizes: set[int] = set()
    for round_number in range(args.rounds):
        order = list(MODELS) if round_number % 2 == 0 else list(reversed(MODELS))
        for kind in order:
            with tempfile.TemporaryDirectory() as tmp:
                rate, size = one_run(kind, Path(tmp), args.trials, args.width)
            rates[kind].append(rate)
            sizes.add(size)
            print(f"round {round_number + 1} {kind:>8}: {rate:.2f} trials/s ({size} parameters)")
    assert len(sizes) == 1, f"the two networks differ in size: {sizes}"
    ratios = [own / built for own, built in zip(rates["own"], rates["built-in"], strict=True)]
    print(
        f"\ntrials/s, median: built-in {median(rates['built-in']):.2f}, "
        f"own {median(rates['own']):.2f}; own / built-in per round: median "
        f"{median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})"
    )
    figure("own model: own / built-in trials/s", ratios, "x")
    print_build_costs(args.width)
    print(f"load average at end: {_machine.load()}")


if __name__ == "__main__":
    main()
