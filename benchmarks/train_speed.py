"""Training speed: hpo.train.train vs a bare hand-written PyTorch loop, same model and data.

Both sides train the same network (fixed hyperparameters, same seed, same initial weights)
on the same device-resident tensors with the same optimizer and batch size, and both
evaluate the validation split once per epoch (what an Optuna objective needs for
trial.report). The runs alternate hpo / bare / hpo / bare ... so both see the same noise
from other jobs on the machine; the figure is the median of samples/s over the repeats.

    python3 benchmarks/train_speed.py                   # CPU, digits CNN
    python3 benchmarks/train_speed.py --device cuda     # + bf16/channels_last, ResNet epoch
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import _machine  # noqa: F401  (sys.path for `hpo` when run from a checkout)
import torch
import torch.nn.functional as F
from _machine import banner, load, median
from torch import nn

from hpo.data import Dataset, load_dataset
from hpo.train import TrainConfig, evaluate, num_outputs, train
from models import create_model

MODEL_PARAMS = {  # a mid-sized point of the digits-cnn space
    "depth": 2,
    "width": 32,
    "activation": "relu",
    "init": "he_normal",
    "dropout": 0.1,
    "batchnorm": True,
    "skip": "residual",
}


@dataclass(frozen=True)
class Run:
    seconds: float
    samples_per_s: float
    val_accuracy: float


def build(data: Dataset, model: str, seed: int, params: dict[str, object]) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(
        model, in_shape=data.in_shape, num_outputs=num_outputs(data.num_classes), **params
    ).to(data.train.x.device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_hpo(net: nn.Module, data: Dataset, config: TrainConfig) -> Run:
    device = data.train.x.device
    sync(device)
    started = time.perf_counter()
    result = train(net, data, config)
    sync(device)
    seconds = time.perf_counter() - started
    n = len(data.train.y) * config.epochs
    return Run(seconds, n / seconds, result.final.val_accuracy)


def run_bare(net: nn.Module, data: Dataset, config: TrainConfig) -> Run:
    """What a competent user writes: randperm + slicing of device tensors, plain fp32."""
    device = data.train.x.device
    x_train, y_train = data.train.x, data.train.y
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    n = len(y_train)
    sync(device)
    started = time.perf_counter()
    accuracy = 0.0
    for _ in range(config.epochs):
        net.train()
        order = torch.randperm(n, device=device, generator=generator)
        for start in range(0, n, config.batch_size):
            index = order[start : start + config.batch_size]
            loss = F.cross_entropy(net(x_train[index]), y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            logits = net(data.val.x)
            accuracy = (logits.argmax(1) == data.val.y).float().mean().item()
    sync(device)
    seconds = time.perf_counter() - started
    return Run(seconds, n * config.epochs / seconds, accuracy)


def run_train_only(net: nn.Module, data: Dataset, config: TrainConfig) -> Run:
    """The bare loop without the per-epoch validation pass: the ceiling of the hardware."""
    device = data.train.x.device
    x_train, y_train = data.train.x, data.train.y
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    n = len(y_train)
    sync(device)
    started = time.perf_counter()
    for _ in range(config.epochs):
        order = torch.randperm(n, device=device, generator=generator)
        for start in range(0, n, config.batch_size):
            index = order[start : start + config.batch_size]
            loss = F.cross_entropy(net(x_train[index]), y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    sync(device)
    seconds = time.perf_counter() - started
    accuracy = evaluate(net, data.val)[1]
    return Run(seconds, n * config.epochs / seconds, accuracy)


def compare(
    data: Dataset, model: str, params: dict[str, object], config: TrainConfig, repeats: int
) -> dict[str, list[Run]]:
    sides: dict[str, Callable[[nn.Module, Dataset, TrainConfig], Run]] = {
        "hpo": run_hpo,
        "bare": run_bare,
        "bare, no eval": run_train_only,
    }
    warm = build(data, model, config.seed, params)  # first-call costs (allocator, kernels)
    run_bare(warm, data, TrainConfig(epochs=1, batch_size=config.batch_size, lr=config.lr))
    runs: dict[str, list[Run]] = {name: [] for name in sides}
    for repeat in range(repeats):
        # Alternate the order too, so neither side always runs right after the other.
        order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
        for name in order:
            runs[name].append(sides[name](build(data, model, config.seed, params), data, config))
    return runs


def report(runs: dict[str, list[Run]], *, title: str) -> None:
    base = median([r.samples_per_s for r in runs["bare"]])
    print(f"\n{title}  (load now {load()})")
    best = max(r.samples_per_s for r in runs["bare"])
    print(
        f"{'loop':<16}{'samples/s median':>18}{'ratio':>7}{'best':>9}{'ratio':>7}{'worst':>9}"
        f"{'val acc':>9}"
    )
    for name, rs in runs.items():
        rates = [r.samples_per_s for r in rs]
        accuracy = median([r.val_accuracy for r in rs])
        print(
            f"{name:<16}{median(rates):>18,.0f}{median(rates) / base:>7.3f}{max(rates):>9,.0f}"
            f"{max(rates) / best:>7.3f}{min(rates):>9,.0f}{accuracy:>9.3f}"
        )
    hpo = [r.samples_per_s for r in runs["hpo"]]
    bare = [r.samples_per_s for r in runs["bare"]]
    pairs = [h / b for h, b in zip(hpo, bare, strict=True)]
    print(f"hpo / bare per interleaved pair: median {median(pairs):.3f} ({len(pairs)} pairs)")


def compile_cost(data: Dataset, model: str, params: dict[str, object], config: TrainConfig) -> None:
    """When is torch.compile repaid? First-epoch (compile) time vs steady-state epochs."""
    one = TrainConfig(**{**config.__dict__, "epochs": 1})
    for compiled in (False, True):
        cfg = TrainConfig(**{**one.__dict__, "compile": compiled})
        net = build(data, model, config.seed, params)
        first = run_hpo(net, data, cfg).seconds
        later = median([run_hpo(net, data, cfg).seconds for _ in range(3)])
        print(f"compile={compiled!s:<5}: first epoch {first:7.3f} s, later epochs {later:7.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timed run")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per side")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--resnet-data", default=None, help="cifar10 folder: ResNet epoch time")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(banner("training speed: hpo.train.train vs a bare PyTorch loop"))
    device = torch.device(args.device)
    data = load_dataset("digits").to(device)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=1e-3, seed=0)
    print(
        f"digits CNN {MODEL_PARAMS}, {len(data.train.y)} train / {len(data.val.y)} val samples, "
        f"batch {args.batch_size}, adam, {args.epochs} epochs per run, {args.repeats} runs per "
        f"side, device {device}"
    )
    report(compare(data, "cnn", MODEL_PARAMS, config, args.repeats), title="digits CNN")
    if args.compile:
        compile_cost(data, "cnn", MODEL_PARAMS, config)
    if device.type == "cuda":
        resnet_epoch(args.resnet_data, device, args.batch_size)


def resnet_epoch(data_dir: str | None, device: torch.device, batch_size: int) -> None:
    """Seconds per epoch of the ResNet study's model (cifar10 when given, else digits)."""
    name = "cifar10" if data_dir else "digits"
    data = load_dataset(name, data_dir=data_dir).to(device)
    params = {"depth": 2, "width": 32, "activation": "relu", "batchnorm": True}
    net = build(data, "resnet", 0, params)
    config = TrainConfig(epochs=1, batch_size=128, lr=1e-3)
    run_hpo(net, data, config)  # warm-up: cudnn.benchmark autotuning
    seconds = median([run_hpo(net, data, config).seconds for _ in range(3)])
    print(f"\nResNet on {name}: {seconds:.3f} s per epoch ({len(data.train.y)} samples)")


if __name__ == "__main__":
    main()
