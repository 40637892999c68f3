"""How much memory a trial will need, known before it allocates any: a guard for the host.

Nothing else bounds a model's size: an MLP of width 8,000 and depth 8 (448M parameters) is
a valid point of a search space and grew one worker to 7.4 GB. `check_fits` estimates a
trial's training memory from its params and refuses it with TrialTooLarge (the trial fails
with that reason, the worker goes on) when the estimate exceeds the study's limit: [train]
max_memory_mb, or by default this worker's share of its device's memory.

The estimate builds the model on PyTorch's meta device (shapes only, no memory, no
arithmetic), so the parameter count is exact and the architecture is described once, in
models/. Training memory is weights + gradients + optimizer state + the activations one
batch keeps for the backward pass (or, if larger, one layer of an evaluation batch), all
counted in fp32: an upper-ish figure. Checked against measured peaks on an H100 host over
cnn/resnet/mlp configurations up to 448M parameters (before ACTIVATION_MARGIN): 1.0-3.3x
the CUDA peak (bf16 autocast halves the activations there), 0.9-1.4x the CPU peak.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hpo.config.settings import WORKERS_ON_DEVICE_ENV, gpu_memory_fraction
from hpo.config.space import CategoricalParam, FixedParam, FloatParam, IntParam, Param
from hpo.errors import TrialTooLarge
from hpo.study.space import split_params
from hpo.training.loop import TrainConfig
from hpo.training.modelentry import build_own, load_builder
from models import create_model
from models.vocabulary import MODEL_KEYS

MB = 2**20
BYTES = 4  # fp32: weights, gradients, optimizer state, activations
CAST_BYTES = 2  # per parameter: the bf16 copy of the weights autocast keeps on CUDA
OPTIMIZER_BUFFERS = {"sgd": 1, "adam": 2, "adamw": 2}  # state tensors per parameter
# Activations counted above are what the model keeps; allocator fragmentation and
# convolution workspaces come on top (measured CPU peaks reached 1.13x the count).
ACTIVATION_MARGIN = 1.25
EVAL_BATCH = 2048  # hpo.training.loop.evaluate's batch: no saved activations, but a large batch
# A trial may plan for this share of its worker's part of the device; the rest is for the
# data set on the device, the framework itself and fragmentation.
SAFETY = 0.8
# A container's memory limit: cgroup v2, then v1 (whose "no limit" is a huge number).
CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)


@dataclass(frozen=True)
class MemoryEstimate:
    """What a trial's training is expected to hold at its peak."""

    parameters: int  # exact count of the model's parameters
    weights_bytes: int  # weights + gradients + optimizer state (+ autocast's bf16 copy)
    activation_bytes: int  # the larger of a training batch's and an evaluation batch's

    @property
    def mb(self) -> float:
        return (self.weights_bytes + self.activation_bytes) / MB


def estimate_memory(
    model: str, params: Mapping[str, Any], in_shape: tuple[int, ...], num_outputs: int
) -> MemoryEstimate:
    """Training memory of model `model` with trial params `params` (pure: no allocation).

    `params` is a trial's params dict (model and training keys); missing keys take the
    defaults of models.create_model and hpo.training.loop.TrainConfig.
    """
    model_params = tuple(sorted((k, v) for k, v in params.items() if k in MODEL_KEYS))
    trace = _trace(model, model_params, tuple(in_shape), num_outputs)
    return _estimate(trace, params, in_shape)


def estimate_own_memory(
    spec: Any, params: Mapping[str, Any], in_shape: tuple[int, ...], num_classes: int
) -> MemoryEstimate | None:
    """Training memory of a trial of an own network ([model] entry), traced like a built-in
    one on the meta device; None when the user's module cannot be built or run there (the
    built module's parameters are then counted instead: check_built_fits)."""
    model_params, _ = split_params(params, own=True)
    trace = _own_trace(
        spec.entry,
        spec.entry_dir,
        spec.entry_sha256,  # other code, another trace
        tuple(sorted(model_params.items())),
        tuple(in_shape),
        num_classes,
    )
    return None if trace is None else _estimate(trace, params, in_shape)


@functools.lru_cache(maxsize=256)
def _own_trace(
    entry: str,
    folder: str | None,
    sha256: str | None,
    model_params: tuple[tuple[str, Any], ...],
    in_shape: tuple[int, ...],
    num_classes: int,
) -> _Trace | None:
    """_trace for an own network: cached too (a trace costs some 20 ms, a trial's build 1)."""
    try:
        builder = load_builder(entry, folder)
        with torch.device("meta"):
            net = build_own(entry, builder, in_shape, num_classes, dict(model_params))
        return _trace_net(net, in_shape)
    except Exception:  # the real build raises its own error, if it has one
        return None


def _estimate(
    trace: _Trace, params: Mapping[str, Any], in_shape: tuple[int, ...]
) -> MemoryEstimate:
    defaults = TrainConfig()
    batch = int(params.get("batch_size", defaults.batch_size))
    buffers = OPTIMIZER_BUFFERS.get(str(params.get("optimizer", defaults.optimizer)), 2)
    inputs = math.prod(in_shape)
    # Training: what autograd saves for the backward pass, plus the gradients and
    # temporaries of the layer being worked on. Evaluation saves nothing, but its batch is
    # large: one layer's inputs, temporaries and output at a time.
    train = batch * (trace.saved + trace.largest_layer + inputs)
    evaluation = EVAL_BATCH * (trace.largest_layer + inputs)
    return MemoryEstimate(
        parameters=trace.parameters,
        weights_bytes=trace.parameters * (BYTES * (2 + buffers) + CAST_BYTES),
        activation_bytes=int(max(train, evaluation) * BYTES * ACTIVATION_MARGIN),
    )


@dataclass(frozen=True)
class _Trace:
    parameters: int  # the model's parameters
    saved: int  # elements autograd saves for the backward pass, per sample
    largest_layer: int  # the most elements one layer saves and outputs, per sample


@functools.lru_cache(maxsize=256)
def _trace(
    model: str,
    model_params: tuple[tuple[str, Any], ...],
    in_shape: tuple[int, ...],
    num_outputs: int,
) -> _Trace:
    """Run the model once on the meta device and count what it keeps, per sample.

    Cached: a trace of the deepest accepted model takes a second, and a worker estimates
    every trial, mostly of configurations it has seen (a categorical space repeats them).
    """
    with torch.device("meta"):
        # The init scheme changes no shape; the default one does no work on meta tensors.
        net = create_model(
            model,
            in_shape=in_shape,
            num_outputs=num_outputs,
            **{**dict(model_params), "init": "default"},
        )
    return _trace_net(net, in_shape)


def _trace_net(net: nn.Module, in_shape: tuple[int, ...]) -> _Trace:
    """Count what `net`, built on the meta device, keeps per sample."""
    weights = {id(p) for p in net.parameters()}
    layers = _layers(net)
    per_layer = dict.fromkeys(layers, 0)
    running: list[nn.Module] = []  # the layer whose forward is running
    saved: dict[int, int] = {}  # id -> elements of each tensor saved for backward

    def enter(layer: nn.Module, _inputs: Any) -> None:
        running.append(layer)

    def leave(layer: nn.Module, _inputs: Any, output: Any) -> None:
        running.remove(layer)
        if isinstance(output, torch.Tensor):
            per_layer[layer] += output.numel()

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        base = tensor if tensor._base is None else tensor._base
        if id(base) not in weights and id(tensor) not in saved:  # weights are counted apart
            saved[id(tensor)] = tensor.numel()
            if running:
                per_layer[running[0]] += tensor.numel()
        return tensor

    for layer in layers:
        layer.register_forward_pre_hook(enter)
        layer.register_forward_hook(leave)
    batch = 2  # BatchNorm refuses a batch of one; counts are per sample below
    # The net and its input are meta tensors already; a device context here would route
    # every op through a TorchFunctionMode and double the trace's cost.
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(torch.empty(batch, *in_shape, device="meta"))
    return _Trace(
        parameters=sum(p.numel() for p in net.parameters()),
        saved=sum(saved.values()) // batch,
        largest_layer=max(per_layer.values(), default=0) // batch,
    )


def _layers(net: nn.Module) -> list[nn.Module]:
    """The modules the network is a sequence of: its children, and those of its Sequentials.

    A block with a skip connection is one layer: its branches are alive at the same time.
    """
    layers: list[nn.Module] = []
    for child in net.children():
        layers += list(child.children()) if isinstance(child, nn.Sequential) else [child]
    return layers


def memory_limit_mb(max_memory_mb: float | None, device: torch.device | str) -> float:
    """The study's limit, or this worker's share of its device's memory times SAFETY.

    The share divides the device among the workers on it (env HPO_WORKERS_ON_DEVICE, set
    by `hpo launch`; default 1): on CUDA as the launcher caps each worker's allocations.
    """
    if max_memory_mb is not None:
        return float(max_memory_mb)
    workers = _workers_on_device()
    device = torch.device(device)
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        share = total * gpu_memory_fraction(workers)
    else:
        share = host_memory_bytes() / workers
    return share * SAFETY / MB


def device_data_bytes(device: torch.device | str) -> int | None:
    """How large a data set may be to live on `device`: the part of this worker's share that
    the memory guard leaves outside its trials (1 - SAFETY). None on the CPU: the data are in
    host memory either way. A larger data set stays on the host (hpo.training.data.Split)."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    total = torch.cuda.get_device_properties(device).total_memory
    return int(total * gpu_memory_fraction(_workers_on_device()) * (1 - SAFETY))


def host_memory_bytes() -> int:
    """Physical memory, or the container's limit when that is lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in CGROUP_LIMITS:
        try:
            limit = path.read_text().strip()
        except OSError:
            continue
        if limit.isdigit():  # v2's "max" means no limit
            return min(total, int(limit))
    return total


def _workers_on_device() -> int:
    text = os.environ.get(WORKERS_ON_DEVICE_ENV, "")
    return int(text) if text.isdigit() and int(text) > 0 else 1


def check_fits(
    spec: Any,
    params: Mapping[str, Any],
    in_shape: tuple[int, ...],
    num_outputs: int,
    device: torch.device | str,
) -> MemoryEstimate | None:
    """Raise TrialTooLarge when a trial of `spec` (a StudySpec) with `params` will not fit.

    Called before the model is built, so a refused trial allocates nothing. Returns the
    estimate; None for an own network that the meta device cannot trace (then
    check_built_fits judges the built module).
    """
    limit = memory_limit_mb(spec.train.max_memory_mb, device)
    if getattr(spec, "entry", None) is None:
        estimate = estimate_memory(spec.model, params, in_shape, num_outputs)
    else:  # an own build takes num_classes: two classes are the one-logit case
        classes = 2 if num_outputs == 1 else num_outputs
        found = estimate_own_memory(spec, params, in_shape, classes)
        if found is None:
            return None
        estimate = found
    if estimate.mb > limit:
        raise TrialTooLarge(f"too large: {_describe(estimate, params, limit, spec)}")
    return estimate


def check_built_fits(
    spec: Any, net: nn.Module, params: Mapping[str, Any], device: torch.device | str
) -> None:
    """TrialTooLarge when the weights, gradients and optimizer state of the built `net`
    alone exceed the limit (activations unknown): the guard for an untraceable own network."""
    limit = memory_limit_mb(spec.train.max_memory_mb, device)
    count = sum(p.numel() for p in net.parameters())
    buffers = OPTIMIZER_BUFFERS.get(str(params.get("optimizer", TrainConfig().optimizer)), 2)
    estimate = MemoryEstimate(count, count * (BYTES * (2 + buffers) + CAST_BYTES), 0)
    if estimate.mb > limit:
        raise TrialTooLarge(f"too large: {_describe(estimate, params, limit, spec)}")


def _describe(estimate: MemoryEstimate, params: Mapping[str, Any], limit: float, spec: Any) -> str:
    source = "[train] max_memory_mb" if spec.train.max_memory_mb is not None else "device share"
    shape = ", ".join(f"{k} {params[k]}" for k in ("depth", "width", "batch_size") if k in params)
    return (
        f"estimated {estimate.mb:,.0f} MB of training memory for {estimate.parameters:,} "
        f"parameters ({shape or 'defaults'}) > limit {limit:,.0f} MB ({source})"
    )


def largest_config(space: Mapping[str, Param]) -> dict[str, Any]:
    """The point of a search space that needs the most memory (pure).

    Deepest, widest, largest batch, the optimizer with the most state, BatchNorm on,
    dropout on, the skip with the most layers; other keys take any allowed value.
    """
    return {key: _largest_value(key, param) for key, param in space.items()}


# Categorical values by the memory they cost, cheapest first (unlisted ones cost alike).
_COSTLIER = {
    "optimizer": ["sgd", "adam", "adamw"],
    "skip": ["none", "residual", "highway"],
}


def _largest_value(key: str, param: Param) -> Any:
    if isinstance(param, FixedParam):
        return param.value
    if isinstance(param, IntParam):
        return param.low + (param.high - param.low) // param.step * param.step
    if isinstance(param, FloatParam):
        return param.high
    assert isinstance(param, CategoricalParam)
    order = _COSTLIER.get(key)
    if order is not None:
        return max(param.choices, key=lambda c: order.index(c) if c in order else -1)
    if all(isinstance(c, bool) for c in param.choices):
        return True in param.choices
    if all(isinstance(c, int | float) for c in param.choices):
        return max(param.choices)
    return param.choices[0]


def largest_config_warning(
    spec: Any, in_shape: tuple[int, ...], num_outputs: int, device: torch.device | str
) -> str | None:
    """A one-line warning when the largest point of the spec's space will not fit, else None.

    For `hpo launch` to print before it starts workers: such trials will fail as too large.
    """
    params = largest_config(spec.space)
    try:
        check_fits(spec, params, in_shape, num_outputs, device)
    except TrialTooLarge as exc:
        return (
            f"the largest configuration of the search space is {exc}; such trials will "
            "fail: narrow the space or raise [train] max_memory_mb"
        )
    return None
