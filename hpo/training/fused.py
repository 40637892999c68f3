"""Fused training: K small trials of one architecture trained as one model, as HFTA does.

A small trial leaves a GPU mostly idle between kernel launches; K of them in K processes
take turns. Here the K models' parameters are stacked, (K, ...) per tensor, and one
`torch.vmap` of `torch.func.functional_call` runs all K forward and backward passes in the
launches one model would take. The models stay independent: nothing mixes across the K
axis, so each one learns exactly what it would alone.

What each model keeps of its own trial (so fused and separate runs agree, tested on CPU):

- its weights at the start (the caller builds each model with its trial's seed);
- its batch order and augmentation: a generator per model seeded with its `seed`, as
  `loop.train` seeds one per trial; models with one seed share the batches, gathered once;
- its optimizer hyperparameters: lr, weight_decay, momentum, l1, schedule and warmup are
  (K, 1) tensors or per-model factors; the update is torch's Adam / AdamW / SGD written
  once over a (K, N) tensor holding every parameter of every model, so one step costs the
  same few kernels whatever K is;
- its BatchNorm statistics: the running mean/var buffers are stacked too and vmap's batch
  rule for batch_norm updates each model's row in place in training mode (checked against
  separate runs), so no `replace_all_batch_norm_modules_` (which would drop running stats
  and change evaluation) is needed;
- its dropout rate: each `nn.Dropout` becomes a module reading its rate from a stacked
  buffer. The draws come from vmap's own randomness ("different" per model), not from the
  trial's global generator, so with dropout > 0 a fused model matches its separate run in
  distribution only, not draw for draw.

Shared by all K (checked, one clear error otherwise): the architecture (module tree,
parameter and buffer shapes and dtypes), epochs, batch_size, optimizer and augment.
A model ends on its own through pruning (`on_epoch` returns False), `patience` or a
non-finite loss: its result is frozen at its last epoch while the stack keeps computing
it (wasted work, not a wrong result). Not supported: resuming from a checkpoint;
`compile`, `cuda_graph`, `bf16` and `channels_last` are ignored (eager, default layout,
full precision).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.func import functional_call, vmap

from hpo.config.vocabulary import AUGMENTS, OPTIMIZERS
from hpo.training.data import Dataset, Split
from hpo.training.loop import (
    DeviceTimer,
    EpochResult,
    TrainConfig,
    _train_loss,
    augment_generator,
    crop_flip,
    loss_and_correct,
    lr_factor,
    stopped_early,
)

SHARED = ("epochs", "batch_size", "optimizer", "augment")  # one value for all K configs
ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, which loop.make_optimizer uses
ADAM_EPS = 1e-8
EVAL_BATCH = 2048  # as loop.evaluate


class FusionError(ValueError):
    """The models or configurations cannot be trained as one fused stack."""


@dataclass(frozen=True)
class FusedTrial:
    """What one of the K models did: its `loop.TrainResult` history, and how it ended."""

    history: list[EpochResult] = field(default_factory=list)
    stopped_early_at: int | None = None  # `patience` ended it after this epoch
    diverged_at: int | None = None  # its training loss was not finite in this epoch
    pruned_at: int | None = None  # `on_epoch` stopped it after this epoch

    @property
    def final(self) -> EpochResult:
        return self.history[-1]


@dataclass(frozen=True)
class FusedResult:
    trials: list[FusedTrial]
    seconds: float  # wall time of all epochs, evaluation and callbacks included
    samples_per_second: float  # training samples of all active models per wall second
    device_seconds: float  # time of the training steps alone (loop.DeviceTimer)


class StackedDropout(nn.Module):
    """Inverted dropout whose rate is a buffer, so vmap gives each model its own rate."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.register_buffer("p", torch.tensor(float(p)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        keep = (torch.rand_like(x) >= self.p).to(x.dtype)
        return x * keep / (1 - self.p)


def check_fusable(models: Sequence[nn.Module], configs: Sequence[TrainConfig]) -> None:
    """Raise FusionError (one line) unless the models share one architecture and the
    configs agree on what fused training runs once for all (SHARED)."""
    if len(models) != len(configs) or not models:
        raise FusionError(
            f"fused training needs one config per model: {len(models)} models, "
            f"{len(configs)} configs"
        )
    reference = _signature(models[0])
    for k, model in enumerate(models[1:], start=1):
        difference = _first_difference(reference, _signature(model))
        if difference is not None:
            raise FusionError(
                f"fused training needs one architecture: model {k} differs from model 0 "
                f"({difference})"
            )
    for name in SHARED:
        values = [getattr(c, name) for c in configs]
        for k, value in enumerate(values):
            if value != values[0]:
                raise FusionError(
                    f"fused training needs one {name} for all models: model {k} has "
                    f"{value!r}, model 0 has {values[0]!r}"
                )
    if configs[0].optimizer not in OPTIMIZERS:
        raise FusionError(
            f"unknown optimizer {configs[0].optimizer!r}; choose one of: {OPTIMIZERS}"
        )
    if configs[0].augment not in AUGMENTS:
        raise FusionError(f"unknown augment {configs[0].augment!r}; choose one of: {AUGMENTS}")


def _signature(model: nn.Module) -> list[tuple[str, ...]]:
    """The architecture as comparable rows: module types (with their settings, a dropout
    rate aside), then parameter and buffer shapes and dtypes."""
    rows: list[tuple[str, ...]] = []
    for name, module in model.named_modules():
        setting = "" if type(module) is nn.Dropout else module.extra_repr()
        rows.append(("module", name, type(module).__name__, setting))
    for kind, tensors in (
        ("parameter", model.named_parameters()),
        ("buffer", model.named_buffers()),
    ):
        rows.extend((kind, name, str(tuple(t.shape)), str(t.dtype)) for name, t in tensors)
    return rows


def _first_difference(a: list[tuple[str, ...]], b: list[tuple[str, ...]]) -> str | None:
    for row_a, row_b in zip(a, b, strict=False):
        if row_a != row_b:
            theirs, ours = " ".join(row_b[2:]).strip(), " ".join(row_a[2:]).strip()
            return f"{row_b[0]} {row_b[1]!r} is {theirs}, not {ours}"
    if len(a) != len(b):
        longer = a if len(a) > len(b) else b
        extra = longer[min(len(a), len(b))]
        return f"{extra[0]} {extra[1]!r} is in only one of them"
    return None


class _Stack:
    """The K models as one (K, N) parameter tensor plus stacked buffers, and a stateless
    template module (on the meta device) to call them through."""

    def __init__(self, models: Sequence[nn.Module], device: torch.device) -> None:
        self.k = len(models)
        template = copy.deepcopy(models[0])
        dropouts = [n for n, m in template.named_modules() if type(m) is nn.Dropout and n]
        for name in dropouts:
            template.set_submodule(name, StackedDropout(0.0))
        self.template = template.to("meta")
        named = [dict(m.named_parameters()) for m in models]
        self.names = list(named[0])
        self.shapes = [named[0][n].shape for n in self.names]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.l1_mask = [len(s) > 1 for s in self.shapes]  # loop.l1_penalty's weights
        with torch.no_grad():
            rows = [torch.cat([p[n].detach().reshape(-1) for n in self.names]) for p in named]
            self.flat = torch.stack(rows).to(device).requires_grad_()
        buffers = [dict(m.named_buffers()) for m in models]
        self.buffers = {
            n: torch.stack([b[n].detach() for b in buffers]).to(device) for n in buffers[0]
        }
        for name in dropouts:  # each model's own rate, read where vmap gives one per model
            rates = [float(m.get_submodule(name).p) for m in models]
            self.buffers[f"{name}.p"] = torch.tensor(rates, device=device)

    def params(self) -> dict[str, torch.Tensor]:
        """(K, *shape) views of the flat tensor: gradients land in `flat.grad`."""
        parts = torch.split(self.flat, self.sizes, dim=1)
        return {
            n: p.view(self.k, *s) for n, p, s in zip(self.names, parts, self.shapes, strict=True)
        }

    def snapshot(self, k: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.flat[k].detach().clone(), {n: b[k].clone() for n, b in self.buffers.items()}

    def write_back(
        self, k: int, model: nn.Module, state: tuple[torch.Tensor, dict[str, torch.Tensor]]
    ) -> None:
        row, buffers = state
        parameters = dict(model.named_parameters())
        with torch.no_grad():
            for name, part, shape in zip(
                self.names, torch.split(row, self.sizes), self.shapes, strict=True
            ):
                parameters[name].copy_(part.view(shape))
            for name, buffer in model.named_buffers():
                buffer.copy_(buffers[name])


class _Optimizer:
    """torch's Adam / AdamW / SGD (momentum, no dampening or Nesterov), as loop.make_optimizer
    builds them, over the (K, N) stack with per-model hyperparameters as (K, 1) tensors."""

    def __init__(self, kind: str, flat: torch.Tensor, configs: Sequence[TrainConfig]) -> None:
        def column(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=flat.dtype, device=flat.device)[:, None]

        self.kind = kind
        self.base_lr = column([c.lr for c in configs])
        self.lr = self.base_lr.clone()
        self.weight_decay = column([c.weight_decay for c in configs])
        self.momentum = column([c.momentum for c in configs])
        self.steps = 0
        self.first = torch.zeros_like(flat)  # Adam's exp_avg, SGD's momentum buffer
        self.second = torch.zeros_like(flat)  # Adam's exp_avg_sq

    def set_factors(self, factors: list[float]) -> None:
        self.lr.copy_(
            self.base_lr * torch.tensor(factors, dtype=self.lr.dtype)[:, None].to(self.lr.device)
        )

    @torch.no_grad()
    def step(self, param: torch.Tensor, grad: torch.Tensor) -> None:
        self.steps += 1
        if self.kind == "sgd":
            grad = grad + self.weight_decay * param
            if self.steps == 1:
                self.first.copy_(grad)  # torch clones the first gradient into the buffer
            else:
                self.first.mul_(self.momentum).add_(grad)
            param.sub_(self.lr * self.first)
            return
        beta1, beta2 = ADAM_BETAS
        if self.kind == "adamw":
            param.mul_(1 - self.lr * self.weight_decay)
        else:
            grad = grad + self.weight_decay * param
        self.first.lerp_(grad, 1 - beta1)
        self.second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step_size = self.lr / (1 - beta1**self.steps)
        denom = (self.second.sqrt() / math.sqrt(1 - beta2**self.steps)).add_(ADAM_EPS)
        param.sub_(step_size * self.first / denom)


def train_fused(
    models: Sequence[nn.Module],
    data: Dataset,
    configs: Sequence[TrainConfig],
    *,
    on_epoch: Callable[[int, EpochResult], bool] | None = None,
    timer: DeviceTimer | None = None,
) -> FusedResult:
    """Train `models[k]` with `configs[k]` for every k at once; each model ends as it would
    after `loop.train(models[k], data, configs[k])` (weights written back in place).

    `on_epoch(k, result)` sees each model's epochs; returning False stops that model there
    (pruning). A model whose loss stops being finite ends at the epoch before (`diverged_at`)
    instead of raising: the others train on.
    """
    check_fusable(models, configs)
    device = data.train.device
    timer = DeviceTimer(device) if timer is None else timer
    for model in models:
        model.to(device)
    stack = _Stack(models, device)
    optimizer = _Optimizer(configs[0].optimizer, stack.flat, configs)
    l1 = torch.tensor([c.l1 for c in configs], dtype=stack.flat.dtype, device=device)
    use_l1 = any(c.l1 > 0 for c in configs)
    scheduled = any(c.schedule != "none" or c.warmup_epochs > 0 for c in configs)
    epochs, batch_size, augment = configs[0].epochs, configs[0].batch_size, configs[0].augment
    shared_order = len({c.seed for c in configs}) == 1  # gather each batch once for all K

    def loss_of(
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
        l1_k: torch.Tensor,
    ) -> torch.Tensor:
        loss = _train_loss(functional_call(stack.template, (params, buffers), (x,)), y)
        if not use_l1:
            return torch.stack([loss, loss])
        weights = [
            p for p, is_weight in zip(params.values(), stack.l1_mask, strict=True) if is_weight
        ]
        penalty = torch.stack([w.abs().sum() for w in weights]).sum()
        return torch.stack([loss, loss + l1_k * penalty])  # (reported, minimized)

    order_dim = None if shared_order else 0
    train_step = vmap(loss_of, in_dims=(0, 0, order_dim, order_dim, 0), randomness="different")
    n = len(data.train.y)
    generators = [torch.Generator(device=device).manual_seed(c.seed) for c in configs]
    usable = n - 1 if n % batch_size == 1 and n > 1 else n  # as loop.train
    steps = math.ceil(usable / batch_size)
    trials = [FusedTrial() for _ in configs]
    active = list(range(len(configs)))
    final_states: dict[int, tuple[torch.Tensor, dict[str, torch.Tensor]]] = {}
    samples = 0
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        if not active:
            break
        stack.template.train()
        gens = generators[:1] if shared_order else generators
        augments = (
            [augment_generator(device, c.seed, epoch) for c in configs[: len(gens)]]
            if augment == "crop_flip"
            else None
        )
        with timer.section():
            orders = torch.stack([torch.randperm(n, device=device, generator=g) for g in gens])
            running = torch.zeros(len(configs), device=device)  # float32, as loop.train's
            for i, start in enumerate(range(0, usable, batch_size)):
                index = orders[:, start : start + batch_size]
                x, y = _gather(data.train, index, augments)
                if shared_order:
                    x, y = x[0], y[0]
                if scheduled:
                    optimizer.set_factors(
                        [
                            lr_factor(c.schedule, epoch - 1 + i / steps, c.epochs, c.warmup_epochs)
                            for c in configs
                        ]
                    )
                losses = train_step(stack.params(), stack.buffers, x, y, l1)  # (K, 2)
                stack.flat.grad = None
                losses[:, 1].sum().backward()  # the models are independent: per-model grads
                optimizer.step(stack.flat, stack.flat.grad)
                running.add_(losses[:, 0].detach(), alpha=index.shape[1])
        samples += usable * len(active)
        train_losses = (running / usable).tolist()  # one device sync per epoch
        validation = _evaluate_stack(stack, data.val)
        for k in list(active):
            trial = trials[k]
            if not math.isfinite(train_losses[k]):
                trials[k] = FusedTrial(trial.history, diverged_at=epoch)
                active.remove(k)  # its state is NaN now: nothing to snapshot worth keeping
                continue
            result = EpochResult(epoch, train_losses[k], *validation[k])
            trial.history.append(result)
            keep = True if on_epoch is None else on_epoch(k, result)
            if not keep:
                trials[k] = FusedTrial(trial.history, pruned_at=epoch)
            elif stopped_early(trial.history, configs[k].patience):
                trials[k] = FusedTrial(trial.history, stopped_early_at=epoch)
            elif epoch < epochs:
                continue
            final_states[k] = stack.snapshot(k)
            active.remove(k)
    for k, model in enumerate(models):
        stack.write_back(k, model, final_states.get(k) or stack.snapshot(k))
    seconds = time.perf_counter() - started
    rate = samples / seconds if seconds > 0 else 0.0
    return FusedResult(trials, seconds, rate, timer.seconds)


def _gather(
    split: Split, index: torch.Tensor, augments: list[torch.Generator] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of shape (G, B, ...) for a (G, B) index: each order's batch (and augmentation)."""
    x, y = split.batch(index.reshape(-1))
    x = x.view(*index.shape, *x.shape[1:])
    y = y.view(index.shape)
    if augments is not None:
        x = torch.stack([crop_flip(x[g], augments[g]) for g in range(len(augments))])
    return x, y


@torch.inference_mode()
def _evaluate_stack(stack: _Stack, split: Split) -> list[tuple[float, float]]:
    """(loss, accuracy) per model on `split` in eval mode, computed as loop.evaluate does."""
    stack.template.eval()
    params = {n: p.detach() for n, p in stack.params().items()}
    forward = vmap(
        lambda p, b, x: functional_call(stack.template, (p, b), (x,)), in_dims=(0, 0, None)
    )
    totals = torch.zeros(stack.k, device=split.device)
    correct = torch.zeros(stack.k, device=split.device, dtype=torch.long)
    for start in range(0, len(split.y), EVAL_BATCH):
        x, y = split.batch(slice(start, start + EVAL_BATCH))
        logits = forward(params, stack.buffers, x)
        for k in range(stack.k):  # the loop's own loss function, per model: same rounding
            loss, right = loss_and_correct(logits[k], y)
            totals[k] += loss * len(y)
            correct[k] += right
    n = max(len(split.y), 1)
    return [(t / n, c / n) for t, c in zip(totals.tolist(), correct.tolist(), strict=True)]
