"""MLP: ``depth`` hidden layers of ``width`` units, then a linear head."""

from __future__ import annotations

import torch
from torch import nn

from models.config import ModelConfig
from models.layers import create_act, init_weights, make_skip


def dense_block(in_features: int, out_features: int, cfg: ModelConfig) -> nn.Sequential:
    """Linear -> BatchNorm (if on) -> activation -> dropout (if > 0)."""
    # BatchNorm subtracts the batch mean, which would cancel a bias: leave it out.
    layers: list[nn.Module] = [nn.Linear(in_features, out_features, bias=not cfg.batchnorm)]
    if cfg.batchnorm:
        layers.append(nn.BatchNorm1d(out_features))
    layers.append(create_act(cfg.activation))
    if cfg.dropout > 0:
        layers.append(nn.Dropout(cfg.dropout))
    return nn.Sequential(*layers)


class MLP(nn.Module):
    """Fully connected network; flattens any input shape, so images work too.

    The skip connection wraps every hidden layer. Only the first one changes the width
    (in_features -> width, unless they are equal); there residual/highway use a linear
    projection shortcut, so ``skip`` has an effect even at depth 1.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        layers: list[nn.Module] = [nn.Flatten()]
        n_in = cfg.in_features
        for _ in range(cfg.depth):
            block = dense_block(n_in, cfg.width, cfg)
            layers.append(
                make_skip(
                    cfg.skip,
                    block,
                    in_dim=n_in,
                    out_dim=cfg.width,
                    spatial=False,
                    batchnorm=cfg.batchnorm,
                )
            )
            n_in = cfg.width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cfg.width, cfg.num_outputs)
        init_weights(self, cfg.init, cfg.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
