"""The training loop: data already on the device, no DataLoader, no Optuna.

The whole data set lives as tensors on the training device (as in airbench), so an epoch
is a shuffled index tensor and slicing: no per-batch host copies. Images stay uint8 there and
become standardized float32 batch by batch (`Split.batch`). Callers hook in through
`on_epoch` (report / prune, by raising) and `checkpoint` (save state to resume from).

The learning-rate schedule and the augmentation are pure functions of the step, the epoch
and the seed, so a resumed run repeats an unbroken one without saving any state for them.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hpo.config.vocabulary import AUGMENTS, OPTIMIZERS, SCHEDULES
from hpo.training.data import Dataset, Split

WARMUP_START = 0.1  # warmup starts at lr * WARMUP_START: a first step at lr 0 would be wasted
STEP_MILESTONES = (0.5, 0.75)  # "step" multiplies lr by STEP_GAMMA at these shares of the epochs
STEP_GAMMA = 0.1


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10  # passes over the training split
    batch_size: int = 64  # samples per optimizer step
    optimizer: str = "adam"  # sgd (with momentum) | adam | adamw
    lr: float = 1e-3  # learning rate
    weight_decay: float = 0.0  # L2 penalty (decoupled for adamw)
    momentum: float = 0.9  # sgd only
    seed: int = 0  # shuffling order and weight init draws
    schedule: str = "none"  # lr after warmup: none (constant) | step | cosine (to 0), per step
    warmup_epochs: int = 0  # linear warmup from lr * WARMUP_START to lr over these epochs
    augment: str = "none"  # none | crop_flip: random crop (padded) and horizontal flip of images
    l1: float = 0.0  # L1 penalty on conv/linear weights, added to the loss (weight_decay is L2)
    patience: int | None = None  # stop when val loss has not improved for this many epochs
    compile: bool = False  # torch.compile the model; each trial is a new graph, so rarely repaid
    # Capture the training step as a CUDA graph (torch.compile mode="reduce-overhead"): full
    # batches replay it, a smaller last batch runs eagerly, so results equal eager ones.
    # Only on CUDA; elsewhere, or when compiling fails, the run trains eagerly and
    # TrainResult.step_mode / step_mode_reason say so. Off until a GPU benchmark shows it pays.
    cuda_graph: bool = False
    # CUDA tricks, kept only where benchmarks/train_speed.py --ablate shows they pay (on an
    # H100, fashion-mnist CNN, 2026-11-24, older code: `git show 0a49cb2:BENCHMARKS.md`,
    # section 6): channels_last +6%; bf16 autocast -10%, its casts cost more than tensor
    # cores save on layers this small. Nothing changes on a CPU. To be measured again.
    bf16: bool = False  # bf16 autocast: for large models; no loss scaling needed (unlike fp16)
    channels_last: bool = True  # NHWC layout for image models: what cuDNN's fast kernels want


@dataclass(frozen=True)
class EpochResult:
    epoch: int  # 1-based
    train_loss: float
    val_loss: float
    val_accuracy: float


@dataclass(frozen=True)
class Checkpoint:
    """Everything needed to continue a run after `epoch` epochs."""

    epoch: int
    model: dict[str, Any]
    optimizer: dict[str, Any]
    history: list[EpochResult] = field(default_factory=list)
    # The device's global RNG state (dropout draws); None: not saved, and a resumed run
    # with dropout then differs from an unbroken one from the resume point on.
    rng: torch.Tensor | None = None
    final: bool = False  # the run stops here (a stop request): save it whatever the throttle


@dataclass(frozen=True)
class TrainResult:
    history: list[EpochResult]
    seconds: float  # wall time of the epochs this call ran, evaluation and callbacks included
    samples_per_second: float  # training samples processed per wall second (`seconds`)
    device_seconds: float  # time of the training steps alone (see DeviceTimer)
    stopped_early_at: int | None = None  # the epoch after which `patience` ended the run
    # "graph": full batches replayed a captured CUDA graph; "compiled": torch.compile ran
    # them but inductor did not capture; "eager": neither
    step_mode: str = "eager"
    step_mode_reason: str = ""  # why that mode, when a graph was asked for (cuda_graph)

    @property
    def final(self) -> EpochResult:
        return self.history[-1]

    @property
    def step_attrs(self) -> dict[str, str]:
        """The trial attrs saying how the steps ran; none unless a graph was asked for."""
        if not self.step_mode_reason:
            return {}
        return {"step_mode": self.step_mode, "step_mode_reason": self.step_mode_reason}


class DeviceTimer:
    """Adds up the time of timed sections: CUDA events on a GPU, the host clock elsewhere.

    On a GPU the host runs ahead of the device, so host time says little; CUDA events time
    the device's own work and need no sync per section: the loop's one sync per epoch has
    finished them by the time `seconds` reads them (airbench times the same way).
    """

    def __init__(self, device: torch.device) -> None:
        self._device = device
        self._cuda = device.type == "cuda"
        self._pending: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._seconds = 0.0

    @contextlib.contextmanager
    def section(self) -> Iterator[None]:
        """Time the body; a body that raises is not counted."""
        if not self._cuda:
            started = time.perf_counter()
            yield
            self._seconds += time.perf_counter() - started
            return
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        stream = torch.cuda.current_stream(self._device)
        start.record(stream)
        yield
        end.record(stream)
        self._pending.append((start, end))

    @property
    def seconds(self) -> float:
        """Total seconds of the finished sections (waits for the last one on a GPU)."""
        if self._pending:
            self._pending[-1][1].synchronize()
            self._seconds += sum(s.elapsed_time(e) for s, e in self._pending) / 1000
            self._pending.clear()
        return self._seconds


class DivergedError(RuntimeError):
    """The loss became NaN or infinite: this configuration does not train."""


class StopRequested(RuntimeError):
    """A stop was requested; raised at an epoch boundary."""


def num_outputs(num_classes: int) -> int:
    """Two classes take one logit (binary cross-entropy), more take one per class."""
    return 1 if num_classes == 2 else num_classes


def loss_and_correct(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss and number of correct predictions for one batch."""
    loss = _train_loss(logits, y)
    if logits.shape[1] == 1:
        correct = ((logits[:, 0] > 0).long() == y).sum()
    else:
        correct = (logits.argmax(dim=1) == y).sum()
    return loss, correct


def _train_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The loss of loss_and_correct without the accuracy count, which training discards:
    argmax + compare + sum per batch cost as much as the loss itself on small models."""
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0].float(), y.float())
    return F.cross_entropy(logits.float(), y)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = model.parameters()
    # fused kernels are only offered on accelerators; foreach is the CPU default anyway.
    fused = {"fused": True} if next(model.parameters()).is_cuda else {}
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            **fused,
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, **fused)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, **fused)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; choose one of: {OPTIMIZERS}")


def lr_factor(schedule: str, progress: float, epochs: int, warmup_epochs: int = 0) -> float:
    """The learning rate's multiplier after ``progress`` epochs of ``epochs`` (pure).

    ``progress`` counts epochs in steps: step s of an epoch of n steps is (epoch - 1) + s / n,
    so the rate changes every step. Warmup rises linearly from WARMUP_START to 1 over
    ``warmup_epochs``; then ``none`` stays at 1, ``step`` multiplies by STEP_GAMMA at each
    STEP_MILESTONES share of ``epochs``, and ``cosine`` falls from 1 towards 0 over the
    epochs left after warmup (0 after the last step: no step is taken at rate 0).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    if progress < warmup_epochs:
        return WARMUP_START + (1 - WARMUP_START) * progress / warmup_epochs
    if schedule == "step":
        return STEP_GAMMA ** sum(progress >= m * epochs for m in STEP_MILESTONES)
    if schedule == "cosine" and epochs > warmup_epochs:
        return 0.5 * (1 + math.cos(math.pi * (progress - warmup_epochs) / (epochs - warmup_epochs)))
    return 1.0  # "none", or a warmup as long as the run: nothing left to decay over


def crop_padding(size: int) -> int:
    """Pixels of padding for a random crop: 4 on 32x32 (He et al.'s CIFAR recipe), else 2."""
    return 4 if size >= 32 else 2


def crop_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` (N, C, H, W), shifted by up to ``crop_padding`` pixels each way
    (zero-padded, as a random crop of the padded image) and mirrored left-right with p = 1/2.

    Works on the device, on uint8 or float batches, and draws only from ``generator``. On a
    standardized float batch the padding 0 is the mean pixel.
    """
    if x.dim() != 4:
        raise ValueError(f"crop_flip needs image batches (N, C, H, W), got shape {tuple(x.shape)}")
    n, _, h, w = x.shape
    pad = crop_padding(min(h, w))
    padded = F.pad(x, (pad, pad, pad, pad))
    shifts = torch.randint(0, 2 * pad + 1, (2, n), device=x.device, generator=generator)
    rows = shifts[0, :, None] + torch.arange(h, device=x.device)  # (N, H) rows of each crop
    cols = shifts[1, :, None] + torch.arange(w, device=x.device)  # (N, W)
    flip = torch.rand(n, device=x.device, generator=generator) < 0.5
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # a mirrored crop reads cols backwards
    batch = torch.arange(n, device=x.device)[:, None, None]
    # Advanced indexing puts the indexed dims first: (N, H, W, C) -> (N, C, H, W).
    crops = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return crops.permute(0, 3, 1, 2).contiguous()


def augment_generator(device: torch.device, seed: int, epoch: int) -> torch.Generator:
    """The augmentation draws of one epoch: a function of (seed, epoch), so a resumed run
    augments its epochs as an unbroken one does, with no generator state to save."""
    return torch.Generator(device=device).manual_seed(seed * 100_003 + epoch)


def l1_penalty(model: nn.Module) -> torch.Tensor:
    """Sum of |w| over the conv/linear weights (tensors of 2+ dims); biases and BatchNorm's
    scale and shift are not penalized, as they set offsets and scales, not connections."""
    return torch.stack([p.abs().sum() for p in model.parameters() if p.dim() > 1]).sum()


def stopped_early(history: list[EpochResult], patience: int | None) -> bool:
    """True when the last ``patience`` epochs of ``history`` did not lower the best val loss."""
    if patience is None or not history:
        return False
    losses = [r.val_loss for r in history]
    best_epoch = losses.index(min(losses)) + 1  # the first epoch that reached the minimum
    return len(history) - best_epoch >= patience


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    split: Split,
    *,
    batch_size: int = 2048,
    bf16: bool = False,
    channels_last: bool = True,
) -> tuple[float, float]:
    """(mean loss, accuracy) of the model on a split, in eval mode.

    `batch_size` is large because no gradients are kept: few launches, small peak memory.
    """
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), device=split.device)
    total_correct = torch.zeros((), device=split.device, dtype=torch.long)
    for start in range(0, len(split.y), batch_size):
        x, y = split.batch(slice(start, start + batch_size))
        with _autocast(x.device, bf16):
            logits = model(_layout(x, channels_last))
        loss, correct = loss_and_correct(logits, y)
        total_loss += loss * len(y)
        total_correct += correct
    model.train(was_training)
    n = max(len(split.y), 1)
    return total_loss.item() / n, total_correct.item() / n


def choose_step_mode(config: TrainConfig, device: torch.device, usable: int) -> tuple[str, str]:
    """("graph" | "eager", why) for a run of `usable` samples a epoch on `device` (pure)."""
    if not config.cuda_graph:
        return "eager", ""
    if device.type != "cuda":
        return "eager", f"no CUDA device (training on {device.type}): trained eagerly"
    if usable < config.batch_size:
        return "eager", (
            f"no full batch to capture ({usable} samples, batch_size {config.batch_size}): "
            "trained eagerly"
        )
    return "graph", "full batches replayed a CUDA graph (torch.compile reduce-overhead)"


class StepRunner:
    """One training step (forward, loss, backward) through the eager model or, in graph mode,
    through its reduce-overhead compilation for full batches. The first graphed step runs
    under a guard: if compiling or capturing fails, the buffers it touched are restored,
    the step reruns eagerly, and the run stays eager with the reason recorded."""

    def __init__(self, model: nn.Module, config: TrainConfig, mode: str, reason: str) -> None:
        self.model, self.config = model, config
        self.mode, self.reason = mode, reason
        self.proven = False  # a graphed step has completed
        # torch._dynamo takes seconds to import: only a graph-mode run counts skips.
        self.skips_before = _cudagraph_skips() if mode == "graph" else 0
        if mode == "graph":
            # Static shapes only: the smaller last batch never reaches the compiled model.
            self.compiled: nn.Module | Callable[..., Any] = torch.compile(
                model, mode="reduce-overhead", dynamic=False
            )
        else:
            self.compiled = torch.compile(model) if config.compile else model

    def __call__(self, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> torch.Tensor:
        """The step's mean loss (detached), gradients left in the model."""
        if self.mode != "graph" or len(y) != self.config.batch_size:
            forward = self.model if self.mode == "graph" else self.compiled
            return self._step(forward, x, y, device)
        torch.compiler.cudagraph_mark_step_begin()  # the last replay's outputs are spent
        if self.proven:
            return self._step(self.compiled, x, y, device)
        saved = {n: b.clone() for n, b in self.model.named_buffers()}
        try:
            loss = self._step(self.compiled, x, y, device)
        except Exception as error:  # any failure to compile or capture: eager is always right
            with torch.no_grad():
                for name, buffer in self.model.named_buffers():
                    buffer.copy_(saved[name])
            first_line = (str(error).splitlines() or [""])[0][:200]
            self.mode, self.compiled = "eager", self.model
            self.reason = (
                f"graph capture failed ({type(error).__name__}: {first_line}): trained eagerly"
            )
            return self._step(self.model, x, y, device)
        self.proven = True
        return loss

    def outcome(self) -> tuple[str, str]:
        """(mode, reason) after the run. Inductor may run the compiled step without capturing
        it (it counts those skips): the mode is then "compiled", and the reason says so."""
        skipped = _cudagraph_skips() - self.skips_before if self.mode == "graph" else 0
        if skipped > 0:
            return "compiled", f"inductor skipped CUDA-graph capture {skipped} time(s)"
        return self.mode, self.reason

    def _step(
        self, forward: Any, x: torch.Tensor, y: torch.Tensor, device: torch.device
    ) -> torch.Tensor:
        with _autocast(device, self.config.bf16):
            logits = forward(x)
        loss = _train_loss(logits, y)
        l1 = self.config.l1
        objective = loss + l1 * l1_penalty(self.model) if l1 > 0 else loss
        self.model.zero_grad(set_to_none=True)
        objective.backward()
        return loss.detach()


def train(
    model: nn.Module,
    data: Dataset,
    config: TrainConfig,
    *,
    on_epoch: Callable[[EpochResult], None] | None = None,
    checkpoint: Callable[[Checkpoint], None] | None = None,
    resume: Checkpoint | None = None,
    should_stop: Callable[[], bool] | None = None,
    timer: DeviceTimer | None = None,
) -> TrainResult:
    """Train `model` on `data` (tensors already on the target device).

    `on_epoch` sees each epoch's validation result and may raise to end the run (pruning);
    with `config.patience`, the run ends normally once validation loss has not improved for
    that many epochs (`TrainResult.stopped_early_at`);
    `checkpoint` receives the state after each epoch; `resume` continues from one.
    `timer` times the training steps of each epoch (not evaluation, not the callbacks); pass
    one to read it after a run that raised. Raises DivergedError on a NaN/inf loss and
    StopRequested when `should_stop()` turns true, both at an epoch boundary or within the
    epoch that failed.
    """
    device = data.train.device
    timer = DeviceTimer(device) if timer is None else timer
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model.to(device)
    channels_last = config.channels_last and len(data.in_shape) == 3
    if channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config)
    if config.augment not in AUGMENTS:
        raise ValueError(f"unknown augment {config.augment!r}; choose one of: {AUGMENTS}")
    scheduled = config.schedule != "none" or config.warmup_epochs > 0  # else lr stays put
    history: list[EpochResult] = []
    first_epoch = 1
    if resume is not None:
        model.load_state_dict(resume.model)
        optimizer.load_state_dict(resume.optimizer)
        history = list(resume.history)
        first_epoch = resume.epoch + 1
        if resume.rng is not None:
            _set_rng_state(device, resume.rng)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    n = len(data.train.y)
    for _ in range(1, first_epoch):  # replay skipped epochs' shuffles: same order as unbroken
        torch.randperm(n, device=device, generator=generator)
    samples = 0
    started = time.perf_counter()
    stopped_at = len(history) if stopped_early(history, config.patience) else None
    # A last batch of one sample is dropped: BatchNorm cannot normalize a single sample.
    usable = n - 1 if n % config.batch_size == 1 and n > 1 else n
    steps = math.ceil(usable / config.batch_size)  # per epoch: the schedule's unit of progress
    step = StepRunner(model, config, *choose_step_mode(config, device, usable))
    for epoch in range(first_epoch, config.epochs + 1):
        if stopped_at is not None:
            break
        if should_stop is not None and should_stop():
            if checkpoint is not None and history:
                state = (model.state_dict(), optimizer.state_dict())
                checkpoint(Checkpoint(epoch - 1, *state, list(history), _rng_state(device), True))
            raise StopRequested(f"stop requested before epoch {epoch}")
        model.train()
        augment = (
            augment_generator(device, config.seed, epoch) if config.augment == "crop_flip" else None
        )
        with timer.section():
            order = torch.randperm(n, device=device, generator=generator)
            running = torch.zeros((), device=device)
            for i, start in enumerate(range(0, usable, config.batch_size)):
                x, y = data.train.batch(order[start : start + config.batch_size])
                if augment is not None:
                    x = crop_flip(x, augment)
                if scheduled:
                    _set_lr(optimizer, config, epoch - 1 + i / steps)
                loss = step(_layout(x, channels_last), y, device)
                optimizer.step()
                running.add_(loss, alpha=len(y))  # one op; no host sync per batch
        samples += usable
        train_loss = running.item() / usable  # one device sync per epoch, not per batch
        if not math.isfinite(train_loss):
            raise DivergedError(f"training loss became {train_loss} in epoch {epoch}")
        val_loss, val_accuracy = evaluate(
            model, data.val, bf16=config.bf16, channels_last=channels_last
        )
        result = EpochResult(epoch, train_loss, val_loss, val_accuracy)
        history.append(result)
        if checkpoint is not None:
            state = (model.state_dict(), optimizer.state_dict())
            checkpoint(Checkpoint(epoch, *state, list(history), _rng_state(device)))
        if on_epoch is not None:
            on_epoch(result)
        if stopped_early(history, config.patience):
            stopped_at = epoch
    seconds = time.perf_counter() - started
    rate = samples / seconds if seconds > 0 else 0.0
    mode, reason = step.outcome()
    return TrainResult(history, seconds, rate, timer.seconds, stopped_at, mode, reason)


def _set_lr(optimizer: torch.optim.Optimizer, config: TrainConfig, progress: float) -> None:
    """Set the scheduled rate for ``progress`` epochs: a pure function, so nothing to save."""
    factor = lr_factor(config.schedule, progress, config.epochs, config.warmup_epochs)
    for group in optimizer.param_groups:
        group["lr"] = config.lr * factor


def _rng_state(device: torch.device) -> torch.Tensor:
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    return torch.get_rng_state()


def _set_rng_state(device: torch.device, state: torch.Tensor) -> None:
    state = state.to("cpu", torch.uint8)  # a checkpoint loaded with map_location=cuda
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)


def _cudagraph_skips() -> int:
    """How many times inductor declined to capture a compiled graph, in this process."""
    from torch._dynamo.utils import counters  # imported late: torch._dynamo is slow to load

    return int(counters["inductor"]["cudagraph_skips"])


def _autocast(device: torch.device, bf16: bool = False) -> Any:
    """bf16 autocast on CUDA when `bf16`; off elsewhere.

    Off means no context at all: a disabled torch.autocast still costs its enter/exit
    (state save and restore) on every batch.
    """
    if device.type != "cuda" or not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def _layout(x: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    if channels_last and x.dim() == 4 and x.is_cuda:
        return x.contiguous(memory_format=torch.channels_last)
    return x
