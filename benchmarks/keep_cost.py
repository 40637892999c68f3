"""Per-trial cost of keeping the best trials' weights: `[study] keep = 0` vs `keep = 3`.

One in-process worker (hpo.runtime.worker.run_worker, the real training objective) runs a
tiny rings MLP study of TRIALS trials (1 epoch: training is a few ms, so the keeping shows)
on a fresh database per run, keep = 0 and keep = 3 alternating (0, 3, 3, 0, ...).
Reported per trial, median over repeats: SQL statements (counted on the worker's engine,
over the last WINDOW trials), wall seconds of the whole trial, and the milliseconds spent
in ModelKeeper.offer (read holders, upload, remove), on SQLite and on PostgreSQL.

    python3 benchmarks/keep_cost.py                 # ~2 min on 2 cores
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import _machine
import sqlalchemy
from _machine import banner, figure, fresh_postgres, median

from hpo.config.spec import load_spec
from hpo.runtime.worker import run_worker
from hpo.storage.open import open_storage
from hpo.study.create import open_study
from hpo.training.keep import ModelKeeper

STUDY = """
[study]
name = "keep-cost"
trials = {trials}
keep = {keep}
[model]
name = "mlp"
[data]
name = "rings"
max_train = 200
[train]
epochs = 1
diagnostics = false
[sampler]
name = "random"
seed = 0
[pruner]
name = "none"
[space]
depth = {{ low = 1, high = 2 }}
width = {{ low = 8, high = 32 }}
lr = {{ low = 1e-3, high = 1e-1, log = true }}
"""


def one_run(url: str, folder: Path, keep: int, trials: int, window: int) -> dict[str, float]:
    spec_file = folder / f"keep{keep}.toml"
    spec_file.write_text(STUDY.format(trials=trials, keep=keep))
    storage = open_storage(url)
    open_study(storage, load_spec(spec_file))
    statements = [0]
    sqlalchemy.event.listen(
        storage.engine,
        "before_cursor_execute",
        lambda *_: statements.__setitem__(0, statements[0] + 1),
    )
    marks: list[tuple[int, float]] = []
    offer_seconds = [0.0]
    original = ModelKeeper.offer

    def timed_offer(self: ModelKeeper, *args: object, **kwargs: object) -> bool:
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)  # type: ignore[arg-type]
        finally:
            if len(marks) >= trials - window:
                offer_seconds[0] += time.perf_counter() - started

    ModelKeeper.offer = timed_offer  # type: ignore[method-assign]
    try:
        run_worker(
            storage,
            "keep-cost",
            stop=threading.Event(),
            artifacts=folder / "artifacts",
            on_trial_end=lambda: marks.append((statements[0], time.perf_counter())),
        )
    finally:
        ModelKeeper.offer = original  # type: ignore[method-assign]
    (s0, t0), (s1, t1) = marks[trials - window - 1], marks[-1]
    store = folder / "artifacts"
    kept = [p for p in store.iterdir() if p.is_file()] if store.exists() else []
    assert len(kept) == keep, f"{len(kept)} files kept, expected {keep}"
    return {
        "statements": (s1 - s0) / window,
        "seconds": (t1 - t0) / window,
        "offer_ms": 1000 * offer_seconds[0] / window,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--window", type=int, default=30, help="last trials counted")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each keep, alternating")
    args = parser.parse_args()
    print(banner("keep_cost: per-trial cost of keeping the best trials' weights"))
    print(
        f"{args.trials} trials of a 1-epoch rings MLP, last {args.window} counted, "
        f"{args.repeats} runs per setting, alternating"
    )
    order = [0, 3, 3, 0] * ((args.repeats + 1) // 2)
    for backend in ("sqlite", "postgresql"):
        results: dict[int, list[dict[str, float]]] = {0: [], 3: []}
        for keep in order[: 2 * args.repeats]:
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                if backend == "sqlite":
                    url = f"sqlite:///{folder / 'hpo.db'}"
                    results[keep].append(one_run(url, folder, keep, args.trials, args.window))
                    continue
                with fresh_postgres() as url:
                    if url is None:
                        return
                    results[keep].append(one_run(url, folder, keep, args.trials, args.window))
        print(f"\n{backend}:")
        print(f"{'keep':>5} {'statements/trial':>17} {'s/trial':>9} {'keeping ms/trial':>17}")
        for keep, runs in results.items():
            print(
                f"{keep:>5} {median([r['statements'] for r in runs]):>17.1f} "
                f"{median([r['seconds'] for r in runs]):>9.4f} "
                f"{median([r['offer_ms'] for r in runs]):>17.2f}"
            )
        pairs = zip(results[3], results[0], strict=True)
        ratios = [three["seconds"] / zero["seconds"] for three, zero in pairs]
        figure(f"keep: {backend} s/trial, keep = 3 / keep = 0", ratios, "x")
        for keep, runs in results.items():
            figure(f"keep: {backend} statements/trial, keep = {keep}",
                   [r["statements"] for r in runs])  # fmt: skip
    print(f"\nload average at end: {_machine.load()}")


if __name__ == "__main__":
    main()
