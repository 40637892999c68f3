"""Inference latency of a network, measured the way a user deploys it.

On the trial's device, in eval mode and without autograd, after warm-up passes (first calls
allocate, pick kernels, fill caches), as the median of repeated forward passes over one
batch of `batch` real validation samples: the median, because on a shared CPU one pass in
a few lands on a descheduled core and the mean would follow it. On a GPU each pass is timed
with CUDA events, which time the device's work and not the host's queueing of it.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

WARMUP = 5  # passes before timing
REPEATS = 25  # timed passes; their median is the latency


def latency_ms(
    model: nn.Module,
    x: torch.Tensor,
    *,
    warmup: int = WARMUP,
    repeats: int = REPEATS,
) -> float:
    """The median forward-pass time of `model` on the batch `x`, in milliseconds.

    `x` sits on the device the model is timed on. The model's train/eval mode is restored.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            times = _cuda_times(model, x, repeats) if x.is_cuda else _host_times(model, x, repeats)
    finally:
        model.train(was_training)
    return statistics.median(times)


def latency_batch(samples: torch.Tensor, batch: int) -> torch.Tensor:
    """`batch` samples to time a network on: the first ones, repeated when there are fewer."""
    if len(samples) == 0:
        raise ValueError("no samples to time the network on")
    repeats = -(-batch // len(samples))  # ceil
    chosen = samples if repeats == 1 else samples.repeat(repeats, *[1] * (samples.dim() - 1))
    return chosen[:batch].contiguous()


def _host_times(model: nn.Module, x: torch.Tensor, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(x)
        times.append((time.perf_counter() - start) * 1000)
    return times


def _cuda_times(model: nn.Module, x: torch.Tensor, repeats: int) -> list[float]:
    torch.cuda.synchronize(x.device)
    times = []
    for _ in range(repeats):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        model(x)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times
