"""ResNet for small images: a conv stem, ``depth`` basic blocks, global average pool, head."""

from __future__ import annotations

import torch
from torch import nn

from models.config import ModelConfig
from models.layers import classifier_head, conv2d, create_act, init_weights, make_skip

MIN_DOWNSAMPLED_SIZE = 2  # downsample only while the feature map is larger than 2x2


def conv_bn(
    in_channels: int, out_channels: int, stride: int, batchnorm: bool, kernel: int = 3
) -> list[nn.Module]:
    """kernel x kernel conv (padding kernel // 2), then BatchNorm when on (bias only without)."""
    conv = conv2d(in_channels, out_channels, kernel, stride=stride, bias=not batchnorm)
    return [conv, nn.BatchNorm2d(out_channels)] if batchnorm else [conv]


class BasicBlock(nn.Module):
    """He et al. 2016 basic block: ``act(skip(x, conv-bn-act-conv-bn))``.

    The skip combines the block's input with its two-conv body: ``residual`` adds them (the
    usual ResNet), ``highway`` gates them, ``none`` drops the input (a plain network of the
    same depth, the paper's baseline). A stride-2 block doubles the channels and gets a
    projection shortcut.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, cfg: ModelConfig) -> None:
        super().__init__()
        body = nn.Sequential(
            *conv_bn(in_channels, out_channels, stride, cfg.batchnorm, cfg.kernel),
            create_act(cfg.activation),
            *conv_bn(out_channels, out_channels, 1, cfg.batchnorm, cfg.kernel),
        )
        self.body = make_skip(
            cfg.skip,
            body,
            in_dim=in_channels,
            out_dim=out_channels,
            spatial=True,
            stride=stride,
            batchnorm=cfg.batchnorm,
        )
        self.act = create_act(cfg.activation)  # after the sum, as in the original ResNet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x))


class ResNet(nn.Module):
    """Stem conv to ``width`` channels, then ``depth`` basic blocks.

    Every other block (the 2nd, 4th, ...) downsamples by stride 2 and doubles the channels
    while the map is larger than 2x2, so each resolution gets at least one full-resolution
    block and 8x8 digits stop at 2x2. The stem has no pooling: inputs are already small, and
    strided convs do all the downsampling, so ``cfg.pool`` does not apply here.
    Dropout is applied once, before the head.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        in_channels, height, width = cfg.image_shape("resnet")
        self.stem = nn.Sequential(
            *conv_bn(in_channels, cfg.width, 1, cfg.batchnorm, cfg.kernel),
            create_act(cfg.activation),
        )
        size, channels = min(height, width), cfg.width
        blocks: list[nn.Module] = []
        for i in range(cfg.depth):
            downsample = i % 2 == 1 and size > MIN_DOWNSAMPLED_SIZE
            out_channels = channels * 2 if downsample else channels
            blocks.append(BasicBlock(channels, out_channels, 2 if downsample else 1, cfg))
            if downsample:
                size = (size + 1) // 2  # k x k conv, padding k // 2, stride 2: ceil(size / 2)
            channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.head = classifier_head(channels, cfg.num_outputs, cfg.dropout)
        init_weights(self, cfg.init, cfg.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))
