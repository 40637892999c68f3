"""What a trained 2-D classifier decided: its probability over a grid of the input plane."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def decision_grid(model: nn.Module, *, extent: float, size: int) -> torch.Tensor:
    """P(class 1) of a binary, 2-input ``model`` on a ``size`` x ``size`` grid.

    The grid spans [-extent, extent] on both inputs; row i is the i-th value of the second
    input (bottom to top), column j the j-th of the first, as an image's pixels. Runs in
    eval mode (BatchNorm on its running statistics, no dropout) and leaves the model's
    mode as it was.

    Raises:
        ValueError: ``size`` < 2, ``extent`` <= 0, or a model without exactly one logit.
    """
    if size < 2 or not extent > 0:
        raise ValueError(f"need size >= 2 and extent > 0, got size={size}, extent={extent}")
    axis = torch.linspace(-extent, extent, size)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    points = torch.stack([xs.flatten(), ys.flatten()], dim=1)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        logits = model(points.to(device))
    finally:
        model.train(was_training)
    if logits.dim() != 2 or logits.shape[1] != 1:
        raise ValueError(f"need one logit per point, got shape {tuple(logits.shape)}")
    return torch.sigmoid(logits[:, 0].float()).reshape(size, size).cpu()
