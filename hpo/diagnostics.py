"""Per-trial layer diagnostics: why a configuration trained, stalled or blew up.

`record_layer_stats` runs `models.layer_stats` on one fixed training batch (one forward and
one backward pass, so it costs far less than a single epoch) and stores the result as
compact user attrs, e.g. ``diag_init_act_std`` = [1.02, 0.97, 0.91]. The objective calls it
right after the model is built ("init") and when training ends or is pruned ("final").
"""

from __future__ import annotations

import math

import optuna
import torch
from torch import nn

from hpo.data import Dataset
from hpo.train import loss_and_correct
from models import layer_stats

DIAG_BATCH = 256  # samples in the diagnostic batch: enough for stable std, still one batch
DIAG_DIGITS = 4  # significant digits kept: the attrs stay short in storage and dashboard
PREFIX = "diag_"
PHASES = ("init", "final")
STATS = ("act_std", "grad_norm", "dead_fraction")


def diagnostic_batch(data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The first samples of the training split: the same batch for every trial."""
    return data.train.x[:DIAG_BATCH], data.train.y[:DIAG_BATCH]


def record_layer_stats(
    trial: optuna.Trial, phase: str, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """Measure `model` on `batch` and store ``diag_{phase}_{stat}`` user attrs."""
    x, y = batch
    model.to(x.device)
    stats = layer_stats(model, x, y, lambda logits, target: loss_and_correct(logits, target)[0])
    for name in STATS:
        trial.set_user_attr(f"{PREFIX}{phase}_{name}", [_compact(v) for v in stats[name]])


def _compact(value: float) -> float | None:
    """Rounded to a few significant digits; None for NaN / inf, which JSON cannot hold."""
    if not math.isfinite(value):
        return None
    if value == 0:
        return 0.0
    return round(value, DIAG_DIGITS - 1 - math.floor(math.log10(abs(value))))
