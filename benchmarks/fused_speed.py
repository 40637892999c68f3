"""Fused training vs separate trials: samples/s of K trials of one CNN, trained one after
another with hpo's loop (`train`, as K sequential trials in one worker would) or as one
fused stack (`hpo.training.fused.train_fused`, torch.func + vmap, as HFTA does).

The K trials differ in learning rate and seed (so each has its own init and batch order)
and share the architecture of train_speed.py's CNN. For each K the two sides alternate
(separate first on even repeats, fused first on odd ones), so both see the same noise;
each run is timed on the host clock around a device sync, and the figure is the median.
One untimed run of each side per K comes first: what a long-lived worker pays only once.
The accuracies are printed too: the fused side must land where the separate one does
(equal up to dropout draws, which vmap makes differently; tests/hpo/training/test_fused.py
checks exact equality without dropout).

    python3 benchmarks/fused_speed.py --device cuda            # fashion-mnist, K = 1, 2, 4, 8
    python3 benchmarks/fused_speed.py --ks 1,2 --max-train 300 --epochs 1 --repeats 2  # CPU
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable

import _machine  # noqa: F401  (sys.path for `hpo` when run from a checkout)
import torch
from _machine import banner, figure, load, median
from torch import nn
from train_speed import MODEL_PARAMS

from hpo.training.data import Dataset, load_dataset
from hpo.training.fused import train_fused
from hpo.training.loop import TrainConfig, num_outputs, train
from models import create_model

LRS = (1e-3, 2e-3, 5e-4, 3e-3, 1e-3, 7e-4, 1.5e-3, 4e-3)  # one per trial, cycled past 8


@dataclasses.dataclass(frozen=True)
class Run:
    samples_per_s: float
    accuracies: list[float]


def trials(k: int, epochs: int, batch_size: int) -> list[TrainConfig]:
    return [
        TrainConfig(epochs=epochs, batch_size=batch_size, lr=LRS[i % len(LRS)], seed=i + 1)
        for i in range(k)
    ]


def build(data: Dataset, seed: int) -> nn.Module:
    torch.manual_seed(seed)  # as a trial: its seed, then its weights
    model = create_model(
        "cnn", in_shape=data.in_shape, num_outputs=num_outputs(data.num_classes), **MODEL_PARAMS
    )
    return model.to(data.train.device)


def timed(data: Dataset, configs: list[TrainConfig], body: Callable[[], list[float]]) -> Run:
    device = data.train.device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    accuracies = body()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    samples = sum(len(data.train) * c.epochs for c in configs)
    return Run(samples / seconds, accuracies)


def run_separate(data: Dataset, configs: list[TrainConfig]) -> Run:
    def body() -> list[float]:
        return [train(build(data, c.seed), data, c).final.val_accuracy for c in configs]

    return timed(data, configs, body)


def run_fused(data: Dataset, configs: list[TrainConfig]) -> Run:
    def body() -> list[float]:
        models = [build(data, c.seed) for c in configs]
        return [t.final.val_accuracy for t in train_fused(models, data, configs).trials]

    return timed(data, configs, body)


SIDES = {"separate": run_separate, "fused": run_fused}


def measure(data: Dataset, k: int, args: argparse.Namespace) -> dict[str, list[Run]]:
    configs = trials(k, args.epochs, args.batch_size)
    runs: dict[str, list[Run]] = {name: [] for name in SIDES}
    for side in SIDES.values():  # untimed: first-call costs (imports, cuDNN's kernel search
        side(data, configs)  # for these shapes) are paid once per worker, not per trial
    for repeat in range(args.repeats):
        order = list(SIDES) if repeat % 2 == 0 else list(reversed(SIDES))
        for name in order:
            runs[name].append(SIDES[name](data, configs))
    return runs


def report(results: dict[int, dict[str, list[Run]]]) -> str:
    lines = [
        f"{'K':>3}{'separate samples/s':>20}{'fused samples/s':>17}{'fused/separate':>16}"
        f"{'acc separate':>14}{'acc fused':>11}"
    ]
    for k, runs in results.items():
        separate, fused = runs["separate"], runs["fused"]
        pairs = [f.samples_per_s / s.samples_per_s for s, f in zip(separate, fused, strict=True)]
        accuracy = {
            n: statistics.fmean(a for r in rs for a in r.accuracies) for n, rs in runs.items()
        }
        lines.append(
            f"{k:>3}{median([r.samples_per_s for r in separate]):>20,.0f}"
            f"{median([r.samples_per_s for r in fused]):>17,.0f}{median(pairs):>16.3f}"
            f"{accuracy['separate']:>14.4f}{accuracy['fused']:>11.4f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--data", default=None, help="default: digits on CPU, else fashion-mnist")
    parser.add_argument("--ks", default="1,2,4,8", help="trials per run, comma-separated")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per trial")
    parser.add_argument("--repeats", type=int, default=None, help="runs per side (CPU 3, GPU 5)")
    parser.add_argument("--batch-size", type=int, default=None, help="CPU 64, GPU 128")
    parser.add_argument("--max-train", type=int, default=None, help="cap on train samples")
    parser.add_argument("--max-val", type=int, default=None, help="cap on validation samples")
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    args.repeats = args.repeats or (5 if cuda else 3)
    args.batch_size = args.batch_size or (128 if cuda else 64)
    name = args.data or ("fashion-mnist" if cuda else "digits")
    print(banner("fused training vs separate trials"))
    data = load_dataset(name, max_train=args.max_train, max_val=args.max_val).to(device)
    print(
        f"{name} CNN {MODEL_PARAMS}, {len(data.train)} train / {len(data.val)} val samples on "
        f"{device}, batch {args.batch_size}, adam, {args.epochs} epochs a trial, "
        f"{args.repeats} alternated runs per side; acc: mean final val accuracy of all trials"
    )
    results = {int(k): measure(data, int(k), args) for k in args.ks.split(",")}
    print(report(results))
    for k, runs in results.items():
        pairs = [
            f.samples_per_s / s.samples_per_s
            for s, f in zip(runs["separate"], runs["fused"], strict=True)
        ]
        figure(f"fused / separate samples/s, K={k}", pairs, "x")
    print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
