"""layer_stats: per-layer activation and gradient statistics from one batch.

Used to explain why a trial diverged or stalled: exploding or vanishing activation std down
the layers, gradient norms that shrink toward the input, or ReLU units that never fire.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from models.layers import ACTIVATIONS

_ACTIVATION_TYPES = tuple(set(ACTIVATIONS.values()))
_WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_DROPOUT_LAYERS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


def layer_stats(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> dict[str, list[float]]:
    """One forward and backward pass on ``(x, y)``, measured layer by layer.

    Returns:
        ``act_std``: standard deviation of each activation module's output, in forward order.
        ``dead_fraction``: per activation module, the fraction of its output units (every
            feature, or every channel x position for conv maps) that are <= 0 for all samples
            in the batch; 1.0 means the layer passes nothing on.
        ``grad_norm``: L2 norm of the loss gradient with respect to each linear/conv weight,
            in module registration order (input side first; shortcut, gate and head layers
            included); NaN for a frozen weight.

    The pass runs in train mode, so BatchNorm uses batch statistics as in training, but with
    dropout off, so the numbers do not depend on a random mask. Afterwards the model is as it
    was: every module's train/eval flag and the BatchNorm running statistics are restored,
    the hooks are removed, and the gradients are zeroed (set to None, as ``zero_grad`` does).
    """
    act_std: list[float] = []
    dead_fraction: list[float] = []

    def record(_module: nn.Module, _inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        flat = out.detach().flatten(1).float()
        act_std.append(flat.std().item())
        dead_fraction.append((flat <= 0).all(dim=0).float().mean().item())

    modules = list(model.modules())
    modes = [m.training for m in modules]
    # A train-mode forward updates BatchNorm running statistics; a diagnostic must not.
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    weight_layers = [m for m in modules if isinstance(m, _WEIGHT_LAYERS)]
    handles = [m.register_forward_hook(record) for m in modules if isinstance(m, _ACTIVATION_TYPES)]
    try:
        model.train()
        for m in modules:
            if isinstance(m, _DROPOUT_LAYERS):
                m.eval()
        with torch.enable_grad():
            loss = loss_fn(model(x), y)
            trainable = [m.weight for m in weight_layers if m.weight.requires_grad]
            # autograd.grad instead of backward(): nothing accumulates into .grad on the way.
            grads = iter(torch.autograd.grad(loss, trainable, allow_unused=True))
        grad_norm: list[float] = []
        for m in weight_layers:
            if not m.weight.requires_grad:
                grad_norm.append(float("nan"))
                continue
            g = next(grads)  # None when the weight does not reach the loss
            grad_norm.append(0.0 if g is None else g.norm().item())
    finally:
        for handle in handles:
            handle.remove()
        for m, training in zip(modules, modes, strict=True):
            m.training = training
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
        model.zero_grad(set_to_none=True)
    return {"act_std": act_std, "grad_norm": grad_norm, "dead_fraction": dead_fraction}
