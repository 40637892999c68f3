"""Training speed: a trial inside hpo vs a bare hand-written PyTorch loop, same model and data.

Four sides train the same network (fixed hyperparameters, same seed) on the same data, held
on the device as tensors, with the same optimizer and batch size, and all but the last
evaluate the validation split once per epoch (what an Optuna objective needs for
trial.report):

- ``hpo trial``: a whole trial through hpo.training.objective.Objective (in an in-memory
  study): uint8 images standardized per batch, layer diagnostics, test evaluation, user
  attrs. Its tricks are hpo's defaults (channels_last on CUDA; no bf16, no compile),
  whatever the flags say.
- ``hpo train()``: hpo.training.loop.train alone, with the tricks the flags choose.
- ``bare``: what a competent user writes, airbench style: float inputs standardized once on
  the device, randperm + slicing, no DataLoader, the same tricks as ``hpo train()``.
- ``bare, no eval``: the bare loop without validation: the ceiling of the hardware.

Every side is timed the same way, from its first to its last kernel: CUDA events on a GPU,
the host clock on a CPU (hpo.training.loop.DeviceTimer). The runs alternate sides, so all see the
same noise from other jobs on the machine; the figure is the median over the repeats. The
tricks (bf16 autocast, channels_last, torch.compile) can each be switched, and `--ablate`
measures ``hpo train()`` with each switched from its default in turn, so each one's worth
is recorded.

    python3 benchmarks/train_speed.py                       # CPU, digits CNN
    python3 benchmarks/train_speed.py --device cuda --ablate  # fashion-mnist, ~3 min on an H100
    python3 benchmarks/train_speed.py --device cuda --no-bf16 --no-channels-last
    python3 benchmarks/train_speed.py --device cuda --graph   # eager vs CUDA-graph step only
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import _machine  # noqa: F401  (sys.path for `hpo` when run from a checkout)
import optuna
import torch
import torch.nn.functional as F
from _machine import banner, figure, load, median
from torch import nn

from hpo.config.space import FixedParam
from hpo.config.spec import DataSpec, StudySpec, TrainSpec
from hpo.training.data import Dataset, load_dataset
from hpo.training.loop import DeviceTimer, TrainConfig, evaluate, num_outputs, train
from hpo.training.objective import Objective
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
EVAL_BATCH = 2048  # validation batch of every side: hpo.training.loop.evaluate's default


@dataclass(frozen=True)
class Run:
    seconds: float
    samples_per_s: float
    val_accuracy: float


@dataclass(frozen=True)
class Setup:
    """What every side trains: the same data, model and configuration."""

    data: Dataset  # on the device
    model: str
    params: dict[str, object]
    config: TrainConfig


def build(setup: Setup) -> nn.Module:
    torch.manual_seed(setup.config.seed)
    data = setup.data
    return create_model(
        setup.model, in_shape=data.in_shape, num_outputs=num_outputs(data.num_classes),
        **setup.params,
    ).to(data.train.device)  # fmt: skip


def timed(setup: Setup, body: Callable[[], float]) -> Run:
    """Run `body` (it returns the final val accuracy) and time it from first to last kernel."""
    device = setup.data.train.device
    timer = DeviceTimer(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # nothing of an earlier side inside this one's timing
    with timer.section():
        accuracy = body()
    seconds = timer.seconds
    samples = len(setup.data.train) * setup.config.epochs
    return Run(seconds, samples / seconds, accuracy)


def run_trial(setup: Setup) -> Run:
    """One whole trial through hpo's Objective, as a worker runs it."""
    fixed = {**setup.params, "lr": setup.config.lr, "batch_size": setup.config.batch_size}
    fixed["optimizer"] = setup.config.optimizer
    spec = StudySpec(
        name="train-speed",
        model=setup.model,
        data=DataSpec(name=setup.data.name),
        train=TrainSpec(epochs=setup.config.epochs),
        space={key: FixedParam(value) for key, value in fixed.items()},
    )
    objective = Objective(spec, setup.data)
    study = optuna.create_study(direction="maximize")
    return timed(setup, lambda: _optimize_once(study, objective))


def _optimize_once(study: optuna.Study, objective: Objective) -> float:
    study.optimize(objective, n_trials=1)
    return float(study.trials[-1].value)


def run_hpo(setup: Setup) -> Run:
    net = build(setup)
    return timed(setup, lambda: train(net, setup.data, setup.config).final.val_accuracy)


def run_bare(setup: Setup, *, validate: bool = True) -> Run:
    """What a competent user writes (airbench style), with the tricks of `setup.config`."""
    config, data = setup.config, setup.data
    device = data.train.device
    cuda = device.type == "cuda"
    net = build(setup)
    # Standardized once, as float32 on the device (4x the memory of hpo's uint8 images).
    x_train, y_train = data.train.inputs(), data.train.y
    x_val, y_val = data.val.inputs(), data.val.y
    if cuda and config.channels_last and x_train.dim() == 4:
        net.to(memory_format=torch.channels_last)
        x_train = x_train.contiguous(memory_format=torch.channels_last)
        x_val = x_val.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(
        net.parameters(), lr=config.lr, **({"fused": True} if cuda else {})
    )
    step = torch.compile(net) if config.compile else net
    amp = (
        (lambda: torch.autocast("cuda", dtype=torch.bfloat16))
        if cuda and config.bf16
        else contextlib.nullcontext
    )
    generator = torch.Generator(device=device).manual_seed(config.seed)
    n = len(y_train)

    def body() -> float:
        accuracy = 0.0
        for _ in range(config.epochs):
            net.train()
            order = torch.randperm(n, device=device, generator=generator)
            for start in range(0, n, config.batch_size):
                index = order[start : start + config.batch_size]
                with amp():
                    logits = step(x_train[index])
                loss = F.cross_entropy(logits.float(), y_train[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if validate:
                net.eval()
                correct = torch.zeros((), device=device, dtype=torch.long)
                with torch.no_grad(), amp():
                    for start in range(0, len(y_val), EVAL_BATCH):
                        logits = net(x_val[start : start + EVAL_BATCH])
                        correct += (logits.argmax(1) == y_val[start : start + EVAL_BATCH]).sum()
                accuracy = correct.item() / len(y_val)  # one sync per epoch, as in hpo
        return accuracy

    run = timed(setup, body)
    if not validate:  # measured once, after the timing
        run = dataclasses.replace(run, val_accuracy=evaluate(net, data.val)[1])
    return run


def run_train_only(setup: Setup) -> Run:
    """The bare loop without the per-epoch validation pass: the ceiling of the hardware."""
    return run_bare(setup, validate=False)


SIDES: dict[str, Callable[[Setup], Run]] = {
    "hpo trial": run_trial,
    "hpo train()": run_hpo,
    "bare": run_bare,
    "bare, no eval": run_train_only,
}


def compare(setup: Setup, repeats: int, sides: list[str]) -> dict[str, list[Run]]:
    # First-call costs (allocator, cuDNN autotuning, kernels) paid before any timing.
    run_bare(dataclasses.replace(setup, config=dataclasses.replace(setup.config, epochs=1)))
    runs: dict[str, list[Run]] = {name: [] for name in sides}
    for repeat in range(repeats):
        # Alternate the order too, so neither side always runs right after the other.
        order = sides if repeat % 2 == 0 else list(reversed(sides))
        for name in order:
            runs[name].append(SIDES[name](setup))
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
    bare = [r.samples_per_s for r in runs["bare"]]
    for name in ("hpo trial", "hpo train()"):
        if name in runs:
            pairs = [h.samples_per_s / b for h, b in zip(runs[name], bare, strict=True)]
            print(f"{name} / bare per interleaved pair: median {median(pairs):.3f} ({len(pairs)})")
            figure(f"{title}: {name} / bare loop, samples/s", pairs, "x")


def ablate(setup: Setup, repeats: int) -> None:
    """hpo train() with each trick switched from its default in turn, alternating."""
    base = setup.config
    variants = {
        "default": base,
        "bf16 switched": dataclasses.replace(base, bf16=not base.bf16),
        "channels_last switched": dataclasses.replace(base, channels_last=not base.channels_last),
        "both switched": dataclasses.replace(
            base, bf16=not base.bf16, channels_last=not base.channels_last
        ),
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for repeat in range(repeats):
        order = list(variants) if repeat % 2 == 0 else list(reversed(variants))
        for name in order:
            run = run_hpo(dataclasses.replace(setup, config=variants[name]))
            rates[name].append(run.samples_per_s)
    reference = median(rates["default"])
    print(f"\ntricks, hpo train() ({repeats} runs each, load now {load()})")
    print(f"{'variant':<20}{'samples/s median':>18}{'vs default':>12}")
    for name, values in rates.items():
        print(f"{name:<20}{median(values):>18,.0f}{median(values) / reference:>12.3f}")


def graph_vs_eager(setup: Setup, repeats: int) -> None:
    """hpo train() eager vs its step captured as a CUDA graph (TrainConfig.cuda_graph),
    alternating; prints the mode each run took and the accuracies (equal within noise)."""
    variants = {
        "eager": dataclasses.replace(setup.config, cuda_graph=False),
        "cuda_graph": dataclasses.replace(setup.config, cuda_graph=True),
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    accuracy: dict[str, float] = {}
    modes: dict[str, str] = {}
    for repeat in range(repeats):
        order = list(variants) if repeat % 2 == 0 else list(reversed(variants))
        for name in order:
            one = dataclasses.replace(setup, config=variants[name])
            net = build(one)
            result = train(net, one.data, one.config)
            rates[name].append(result.samples_per_second)
            accuracy[name] = result.final.val_accuracy
            modes[name] = f"{result.step_mode} ({result.step_mode_reason or 'not asked'})"
    print(f"\neager vs CUDA graph, hpo train() ({repeats} runs each, load now {load()})")
    print(f"{'variant':<12}{'samples/s median':>18}{'vs eager':>10}{'val acc':>9}  step mode")
    reference = median(rates["eager"])
    for name, values in rates.items():
        print(
            f"{name:<12}{median(values):>18,.0f}{median(values) / reference:>10.3f}"
            f"{accuracy[name]:>9.4f}  {modes[name]}"
        )
    pairs = [g / e for g, e in zip(rates["cuda_graph"], rates["eager"], strict=True)]
    figure("hpo train(): cuda_graph / eager, samples/s", pairs, "x")


def compile_cost(setup: Setup) -> None:
    """When is torch.compile repaid? First-epoch (compile) time vs steady-state epochs."""
    for compiled in (False, True):
        config = dataclasses.replace(setup.config, epochs=1, compile=compiled)
        one = dataclasses.replace(setup, config=config)
        net = build(one)
        first = timed(one, lambda n=net, c=one: train(n, c.data, c.config).final.val_accuracy)
        later = [
            timed(one, lambda n=net, c=one: train(n, c.data, c.config).final.val_accuracy)
            for _ in range(3)
        ]
        print(
            f"compile={compiled!s:<5}: first epoch {first.seconds:7.3f} s, later epochs "
            f"{median([r.seconds for r in later]):7.3f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--data", default=None, help="digits | fashion-mnist (default: digits on CPU, else f-m)"
    )
    parser.add_argument("--max-train", type=int, default=None, help="cap on train samples")
    parser.add_argument("--max-val", type=int, default=None, help="cap on validation samples")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timed run")
    parser.add_argument("--repeats", type=int, default=None, help="runs per side (CPU 15, GPU 7)")
    parser.add_argument("--batch-size", type=int, default=None, help="CPU 64, GPU 128")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument(
        "--bf16", action=argparse.BooleanOptionalAction, default=False, help="bf16 autocast (CUDA)"
    )
    parser.add_argument(
        "--channels-last", action=argparse.BooleanOptionalAction, default=True,
        help="NHWC layout for conv nets (CUDA)",
    )  # fmt: skip
    parser.add_argument(
        "--compile", action="store_true",
        help="torch.compile in hpo train() and bare (each run recompiles, as each trial would); "
        "also times compile cost",
    )  # fmt: skip
    parser.add_argument("--ablate", action="store_true", help="measure each trick on hpo train()")
    parser.add_argument(
        "--graph", action="store_true",
        help="only hpo train() eager vs cuda_graph (CUDA graph capture), alternated",
    )  # fmt: skip
    parser.add_argument("--resnet-data", default=None, help="cifar10 folder: ResNet epoch time")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(banner("training speed: a trial inside hpo vs a bare PyTorch loop"))
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    name = args.data or ("fashion-mnist" if cuda else "digits")
    repeats = args.repeats or (7 if cuda else 15)
    batch_size = args.batch_size or (128 if cuda else 64)
    data = load_dataset(name, max_train=args.max_train, max_val=args.max_val).to(device)
    config = TrainConfig(
        epochs=args.epochs, batch_size=batch_size, lr=1e-3, seed=0,
        bf16=args.bf16, channels_last=args.channels_last, compile=args.compile,
    )  # fmt: skip
    setup = Setup(data, "cnn", MODEL_PARAMS, config)
    tricks = f"bf16 {args.bf16}, channels_last {args.channels_last}, compile {args.compile}"
    print(
        f"{name} CNN {MODEL_PARAMS}, {len(data.train)} train / {len(data.val)} val samples "
        f"({data.train.x.dtype} on {device}), batch {batch_size}, adam, {args.epochs} epochs "
        f"per run, {repeats} runs per side; tricks: {tricks} (hpo trial: hpo's defaults)"
    )
    if args.graph:
        graph_vs_eager(setup, repeats)
        return
    report(compare(setup, repeats, list(SIDES)), title=f"{name} CNN")
    if args.ablate and cuda:
        ablate(setup, max(3, repeats // 2))
    if args.compile:
        compile_cost(setup)
    if cuda:
        resnet_epoch(args.resnet_data, device, batch_size)


def resnet_epoch(data_dir: str | None, device: torch.device, batch_size: int) -> None:
    """Seconds per epoch of the ResNet study's model (cifar10 when given, else digits)."""
    name = "cifar10" if data_dir else "digits"
    data = load_dataset(name, data_dir=data_dir).to(device)
    params: dict[str, Any] = {"depth": 2, "width": 32, "activation": "relu", "batchnorm": True}
    setup = Setup(data, "resnet", params, TrainConfig(epochs=1, batch_size=128, lr=1e-3))
    run_hpo(setup)  # warm-up: cudnn.benchmark autotuning
    seconds = median([run_hpo(setup).seconds for _ in range(3)])
    print(f"\nResNet on {name}: {seconds:.3f} s per epoch ({len(data.train)} samples)")


if __name__ == "__main__":
    main()
