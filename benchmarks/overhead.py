"""Service overhead: `hpo launch study` vs the plain Optuna script, same study, alternating.

Part 1 (A/B): the digits-cnn study (same search space, sampler, pruner and seeds; epochs
and trials reduced for runtime) is run by `hpo launch study ... --workers 1` and by
benchmarks/plain_optuna.py, each as a fresh process on a fresh SQLite file, alternating
hpo / plain / plain / hpo / ... Reported: trials/min from process start to exit (median
over repeats), their ratio, and from the storage's timestamps where the time went:
startup (process start -> first trial start), in-trial overhead (trial wall time minus
the recorded training seconds), gap between trials, and tail (last trial end -> exit).

Part 2 (instrumented): one hpo worker (hpo.runtime.worker.run_worker, in this process) runs the same
study with every storage, sampler and pruner call and the training loop wrapped in timers
(exclusive time, main thread only), which splits a trial into training, model building,
storage, sampling, pruning and hpo's own glue, in milliseconds per trial.

    python3 benchmarks/overhead.py                  # ~4 min on 2 cores
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import itertools
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _machine
import optuna
from _machine import banner, figure, load, median
from optuna.trial import TrialState

HERE = Path(__file__).resolve().parent
STUDY_FILE = _machine.ROOT / "studies" / "digits-cnn.toml"


def reduced_study_file(
    folder: Path, *, epochs: int, trials: int, same_configs: bool, diagnostics: bool = True
) -> Path:
    """digits-cnn.toml with fewer epochs and trials.

    same_configs: random search with one seed and no pruner, so that both sides train the
    very same networks for the same epochs. With TPE and pruning each side's path depends on
    its own results (its own init seeds and split), so the two sides would train different
    architectures and trials/min would compare architectures, not service overhead.
    """
    text = STUDY_FILE.read_text()
    text = re.sub(r"(?m)^epochs = \d+", f"epochs = {epochs}", text)
    text = re.sub(r"(?m)^trials = \d+", f"trials = {trials}", text)
    if not diagnostics:  # hpo's layer diagnostics off: the leanest trial it runs
        text = text.replace("[train]\n", "[train]\ndiagnostics = false\n")
    if same_configs:
        text = re.sub(r"\[sampler\][^\[]*", '[sampler]\nname = "random"\nseed = 0\n\n', text)
        text = re.sub(r"\[pruner\][^\[]*", '[pruner]\nname = "none"\n\n', text)
    path = folder / "digits-cnn-bench.toml"
    path.write_text(text)
    return path


@dataclass
class Side:
    wall: float  # process start -> exit, seconds
    trials: int  # finished trials in the storage
    states: dict[str, int]
    best: float | None
    startup: float  # process start -> first trial start
    in_trial: list[float]  # per completed trial: wall - training seconds
    gaps: list[float]  # previous trial end -> next trial start
    tail: float  # last trial end -> process exit
    train: float  # total training seconds
    configs: list[tuple[tuple[str, object], ...]]  # sampled params, in trial order

    @property
    def per_min(self) -> float:
        return 60 * self.trials / self.wall


def run_side(name: str, file: Path, folder: Path, index: int, trials: int) -> Side:
    db = folder / f"{name}-{index}.db"
    url = f"sqlite:///{db}"
    out = folder / f"{name}-{index}.json"
    if name == "hpo":
        command = [sys.executable, "-m", "hpo", "--storage", url, "launch", "study", str(file)]
        command += ["--trials", str(trials), "--workers", "1"]
    else:
        command = [sys.executable, str(HERE / "plain_optuna.py"), "--study-file", str(file)]
        command += ["--storage", url, "--trials", str(trials), "--out", str(out)]
    began = dt.datetime.now()
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    ended = began + dt.timedelta(seconds=wall)
    study = optuna.load_study(study_name="digits-cnn", storage=url)
    finished = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    ]
    finished.sort(key=lambda t: t.datetime_start)
    if name == "hpo":
        train = {t.number: t.user_attrs.get("train_seconds") for t in finished}
    else:
        train = {int(k): v for k, v in json.loads(out.read_text()).items()}
    in_trial = [
        (t.datetime_complete - t.datetime_start).total_seconds() - train[t.number]
        for t in finished
        if t.state == TrialState.COMPLETE and train.get(t.number) is not None
    ]
    gaps = [
        (b.datetime_start - a.datetime_complete).total_seconds()
        for a, b in itertools.pairwise(finished)
    ]
    states: dict[str, int] = defaultdict(int)
    for t in finished:
        states[t.state.name.lower()] += 1
    completed = [t.value for t in finished if t.state == TrialState.COMPLETE]
    return Side(
        wall=wall,
        trials=len(finished),
        states=dict(states),
        best=max(completed) if completed else None,
        startup=(finished[0].datetime_start - began).total_seconds(),
        in_trial=in_trial,
        gaps=gaps,
        tail=(ended - finished[-1].datetime_complete).total_seconds(),
        train=sum(v for v in train.values() if v is not None),
        configs=[tuple(sorted(t.params.items())) for t in sorted(finished, key=lambda t: t.number)],
    )


def ab(file: Path, folder: Path, trials: int, repeats: int) -> dict[str, list[Side]]:
    sides: dict[str, list[Side]] = {"hpo": [], "plain": []}
    for repeat in range(repeats):
        order = ("hpo", "plain") if repeat % 2 == 0 else ("plain", "hpo")  # ABBA
        for name in order:
            side = run_side(name, file, folder, repeat, trials)
            sides[name].append(side)
            print(
                f"  run {repeat + 1} {name:<5}: {side.wall:6.1f} s, {side.per_min:5.1f} trials/min,"
                f" states {side.states}, best {side.best}, load {load()}",
                flush=True,
            )
    return sides


def print_ab(sides: dict[str, list[Side]], label: str) -> None:
    print(f"\n{'':<34}{'hpo':>10}{'plain':>10}")

    def row(label: str, f: Callable[[Side], float], fmt: str = "{:>10.2f}") -> None:
        cells = "".join(fmt.format(median([f(s) for s in sides[k]])) for k in ("hpo", "plain"))
        print(f"{label:<34}{cells}")

    row("wall time, s (median)", lambda s: s.wall)
    row("trials/min (median)", lambda s: s.per_min)
    row("training, s per run", lambda s: s.train)
    # Everything but training, per trial: robust to load spikes that slow training.
    row("non-training time, ms/trial", lambda s: 1000 * (s.wall - s.train) / s.trials, "{:>10.0f}")
    row("startup to first trial, s", lambda s: s.startup)
    row("in-trial overhead, ms/trial", lambda s: 1000 * median(s.in_trial), "{:>10.1f}")
    row("gap between trials, ms", lambda s: 1000 * median(s.gaps), "{:>10.1f}")
    row("last trial end to exit, s", lambda s: s.tail)
    hpo = [s.per_min for s in sides["hpo"]]
    plain = [s.per_min for s in sides["plain"]]
    pairs = [h / p for h, p in zip(hpo, plain, strict=True)]
    print(
        f"ratio hpo/plain trials/min: {median(hpo) / median(plain):.3f} (medians); "
        f"per A/B pair {', '.join(f'{r:.3f}' for r in pairs)}"
    )
    figure(f"overhead ({label}): hpo / plain trials/min", pairs, "x")
    for name in ("hpo", "plain"):
        in_trial = [1000 * median(s.in_trial) for s in sides[name]]
        figure(f"overhead ({label}): {name} in-trial overhead", in_trial, "ms/trial")
    startups = [h.startup - p.startup for h, p in zip(sides["hpo"], sides["plain"], strict=True)]
    figure(f"overhead ({label}): hpo - plain start-up to first trial", startups, "s")
    runs = sides["hpo"] + sides["plain"]
    same = all(run.configs == runs[0].configs for run in runs)
    print(f"every run trained the same configurations: {'yes' if same else 'NO'}")


# ------------------------------------------------------------------ instrumented run


class Profiler:
    """Exclusive wall time per category; nested calls are charged to the innermost one."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list[float]] = []
        self._main = threading.main_thread()

    def wrap(self, category: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not self._main:  # heartbeat thread
                return fn(*args, **kwargs)
            frame = [0.0]  # time spent in nested timed calls
            self._stack.append(frame)
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                self._stack.pop()
                self.seconds[category] += elapsed - frame[0]
                self.calls[category] += 1
                if self._stack:
                    self._stack[-1][0] += elapsed

        return timed

    def wrap_methods(self, category: str, obj: Any, names: list[str]) -> None:
        for name in names:
            setattr(obj, name, self.wrap(category, getattr(obj, name)))


def instrumented(file: Path, folder: Path, trials: int) -> None:
    import hpo.runtime.worker
    import hpo.training.objective
    from hpo.config.spec import load_spec
    from hpo.storage.open import open_storage
    from hpo.study.create import open_study

    profiler = Profiler()
    storage = open_storage(f"sqlite:///{folder / 'instrumented.db'}")
    study = open_study(storage, load_spec(file), trials=trials)
    methods = [n for n in dir(storage) if not n.startswith("_") and callable(getattr(storage, n))]
    profiler.wrap_methods("storage", storage, methods)
    build_sampler, build_pruner = hpo.runtime.worker.build_sampler, hpo.runtime.worker.build_pruner

    def timed_sampler(*args: Any, **kwargs: Any) -> optuna.samplers.BaseSampler:
        sampler = build_sampler(*args, **kwargs)
        names = ["infer_relative_search_space", "sample_relative", "sample_independent"]
        profiler.wrap_methods("sampler", sampler, [*names, "before_trial", "after_trial"])
        return sampler

    def timed_pruner(*args: Any, **kwargs: Any) -> optuna.pruners.BasePruner:
        pruner = build_pruner(*args, **kwargs)
        profiler.wrap_methods("pruner", pruner, ["prune"])
        return pruner

    patches = {
        (hpo.runtime.worker, "build_sampler"): timed_sampler,
        (hpo.runtime.worker, "build_pruner"): timed_pruner,
        (hpo.runtime.worker, "run_trial"): profiler.wrap("hpo glue", hpo.runtime.worker.run_trial),
        (hpo.runtime.worker, "claim_trial"): profiler.wrap(
            "hpo glue", hpo.runtime.worker.claim_trial
        ),
        (hpo.training.objective, "train"): profiler.wrap(
            "training loop", hpo.training.objective.train
        ),
        (hpo.training.objective, "create_network"): profiler.wrap(
            "model build", hpo.training.objective.create_network
        ),
        (hpo.training.objective, "evaluate"): profiler.wrap(
            "test evaluation", hpo.training.objective.evaluate
        ),
    }
    if hasattr(hpo.training.objective, "record_layer_stats"):  # per-trial layer diagnostics
        diagnostics = profiler.wrap("layer diagnostics", hpo.training.objective.record_layer_stats)
        patches[(hpo.training.objective, "record_layer_stats")] = diagnostics
    originals = {key: getattr(*key) for key in patches}
    for (module, name), fn in patches.items():
        setattr(module, name, fn)
    try:
        started = time.perf_counter()
        report = profiler.wrap("worker startup", hpo.runtime.worker.run_worker)(
            storage, study.study_name
        )
        total = time.perf_counter() - started
    finally:
        for (module, name), fn in originals.items():
            setattr(module, name, fn)
    n = report.trials
    print(f"\ninstrumented hpo worker: {n} trials {dict(report.states)} in {total:.1f} s")
    print(f"{'where':<22}{'ms/trial':>10}{'calls/trial':>13}{'share':>8}")
    order = ["training loop", "model build", "test evaluation", "layer diagnostics"]
    order += ["storage", "sampler", "pruner"]
    for category in [*order, "hpo glue", "worker startup"]:
        seconds = profiler.seconds.get(category, 0.0)
        per = "" if category == "worker startup" else f"{profiler.calls[category] / n:>13.1f}"
        if category == "layer diagnostics":
            per += "  (hpo extra: fwd+bwd + 3 user attrs per call)"
        print(f"{category:<22}{1000 * seconds / n:>10.1f}{per:>13}{seconds / total:>8.1%}")
    overhead = sum(profiler.seconds[c] for c in ("storage", "sampler", "pruner", "hpo glue"))
    print(
        f"hpo per-trial overhead (storage + sampler + pruner + glue): {1000 * overhead / n:.1f} "
        f"ms/trial, {overhead / total:.1%} of the worker's time "
        f"(worker startup, once: {profiler.seconds['worker startup']:.2f} s)"
    )
    extra = sum(profiler.seconds[c] for c in ("test evaluation", "layer diagnostics"))
    print(
        f"hpo's extra per-trial work the plain script does not do (test evaluation + layer "
        f"diagnostics): {1000 * extra / n:.1f} ms/trial, {extra / total:.1%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="trials per run (file: 30)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial (file: 12)")
    parser.add_argument("--repeats", type=int, default=4, help="A/B pairs")
    parser.add_argument("--skip-ab", action="store_true", help="only the instrumented run")
    parser.add_argument(
        "--no-diagnostics", action="store_true", help="hpo's side with [train] diagnostics = false"
    )
    parser.add_argument("--skip-instrumented", action="store_true", help="only the A/B runs")
    parser.add_argument(
        "--as-file",
        action="store_true",
        help="keep the file's TPE sampler and median pruner (the two sides then train "
        "different networks); default: random search, same seed, no pruner on both sides",
    )
    args = parser.parse_args()
    print(banner("service overhead: hpo launch vs a plain Optuna script"))
    print(
        f"study {STUDY_FILE.name} with epochs={args.epochs}, trials={args.trials}; "
        f"1 worker process each; SQLite; {args.repeats} A/B pairs (ABBA order); "
        + ("the file's sampler and pruner" if args.as_file else "same configs: random, no pruner")
        + ("; hpo's layer diagnostics off" if args.no_diagnostics else "")
    )
    with tempfile.TemporaryDirectory(prefix="hpo-bench-") as tmp:
        folder = Path(tmp)
        file = reduced_study_file(
            folder,
            epochs=args.epochs,
            trials=args.trials,
            same_configs=not args.as_file,
            diagnostics=not args.no_diagnostics,
        )
        if not args.skip_ab:
            label = "diagnostics off" if args.no_diagnostics else "diagnostics on"
            print_ab(ab(file, folder, args.trials, args.repeats), label)
        if not args.skip_instrumented:
            instrumented(file, folder, args.trials)
    print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
