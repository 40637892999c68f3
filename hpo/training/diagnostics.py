"""Per-trial layer diagnostics: why a configuration trained, stalled or blew up.

`record_layer_stats` runs `models.layer_stats` on one fixed training batch (one forward and
one backward pass, so it costs far less than a single epoch) and adds the result to a
trial's pending user attrs as compact lists, e.g. ``diag_init_act_std`` = [1.02, 0.97, 0.91].
The objective calls it right after the model is built ("init") and when training ends or is
pruned ("final"), and writes all of a trial's attrs together when the trial ends.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from hpo.study.records import diag_attr
from hpo.training.data import Dataset
from hpo.training.loop import loss_and_correct
from models import layer_stats

# Samples in the diagnostic batch: about one training step's worth, so the two calls of a
# trial cost a few steps; a conv layer's std still pools thousands of values.
DIAG_BATCH = 64
DIAG_DIGITS = 4  # significant digits kept: the attrs stay short in storage and dashboard
PHASES = ("init", "final")
STATS = ("act_std", "grad_norm", "dead_fraction")


def diagnostic_batch(data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The first samples of the training split, as model inputs: the same for every trial."""
    return data.train.batch(slice(0, DIAG_BATCH))


def record_layer_stats(
    attrs: dict[str, Any],
    phase: str,
    model: nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    """Measure `model` on `batch` into `attrs` (a trial's pending user attrs), as
    ``diag_{phase}_{stat}`` entries."""
    x, y = batch
    model.to(x.device)
    stats = layer_stats(model, x, y, lambda logits, target: loss_and_correct(logits, target)[0])
    for name in STATS:
        attrs[diag_attr(phase, name)] = [_compact(v) for v in stats[name]]


def _compact(value: float) -> float | None:
    """Rounded to a few significant digits; None for NaN / inf, which JSON cannot hold."""
    if not math.isfinite(value):
        return None
    if value == 0:
        return 0.0
    return round(value, DIAG_DIGITS - 1 - math.floor(math.log10(abs(value))))
