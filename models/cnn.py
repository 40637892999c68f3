"""CNN: ``depth`` conv blocks with 2x2 max- or average-pools, global average pool, linear head."""

from __future__ import annotations

import torch
from torch import nn

from models.config import ModelConfig
from models.layers import (
    classifier_head,
    conv2d,
    create_act,
    create_pool,
    init_weights,
    make_skip,
)

MIN_POOLED_SIZE = 2  # pool only while the feature map is larger than 2x2


def conv_block(in_channels: int, out_channels: int, cfg: ModelConfig) -> nn.Sequential:
    """kernel x kernel conv (size-preserving) -> BatchNorm (if on) -> activation."""
    layers: list[nn.Module] = [
        conv2d(in_channels, out_channels, cfg.kernel, bias=not cfg.batchnorm)
    ]
    if cfg.batchnorm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(create_act(cfg.activation))
    return nn.Sequential(*layers)


class CNN(nn.Module):
    """VGG-style network that adapts its pooling to the image size.

    Channels start at ``width`` and double after every 2x2 pool (``cfg.pool``: max or avg).
    A pool follows a block while the map is larger than 2x2, so 8x8 digits pool twice and
    32x32 images four times, and any depth >= 1 fits any image. The skip connection wraps
    each conv block (before the pool); the first block and each block after a pool change
    the channel count, so residual/highway use a 1x1 projection there. Dropout is applied
    once, before the head: element-wise dropout on conv maps mostly just adds noise
    (neighbouring pixels are correlated), while the classifier is where a small CNN overfits.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        in_channels, height, width = cfg.image_shape("cnn")
        size = min(height, width)
        channels = cfg.width
        layers: list[nn.Module] = []
        for _ in range(cfg.depth):
            block = conv_block(in_channels, channels, cfg)
            layers.append(
                make_skip(
                    cfg.skip,
                    block,
                    in_dim=in_channels,
                    out_dim=channels,
                    spatial=True,
                    batchnorm=cfg.batchnorm,
                )
            )
            in_channels = channels
            if size > MIN_POOLED_SIZE:
                layers.append(create_pool(cfg.pool))
                size //= 2
                channels *= 2
        self.features = nn.Sequential(*layers)
        self.head = classifier_head(in_channels, cfg.num_outputs, cfg.dropout)
        init_weights(self, cfg.init, cfg.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
