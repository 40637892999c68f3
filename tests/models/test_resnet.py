"""ResNet: downsampling schedule, shortcut kinds, input checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models import ModelConfigError, create_model
from models.layers import Highway, Residual
from models.resnet import BasicBlock


def _resnet(in_shape: tuple[int, ...] = (1, 8, 8), **kwargs) -> nn.Module:
    params = {"in_shape": in_shape, "num_outputs": 10, "depth": 4, "width": 4} | kwargs
    return create_model("resnet", **params)


def _strided(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
            and m.stride == (2, 2)]  # fmt: skip


@pytest.mark.parametrize(
    ("in_shape", "depth", "downsamples"),
    [
        ((1, 8, 8), 1, 0),
        ((1, 8, 8), 2, 1),
        ((1, 8, 8), 4, 2),  # 8 -> 4 -> 2
        ((1, 8, 8), 8, 2),  # already 2x2: no more
        ((3, 32, 32), 8, 4),  # 32 -> 16 -> 8 -> 4 -> 2
        ((1, 28, 28), 10, 4),  # 28 -> 14 -> 7 -> 4 -> 2
    ],
)
def test_every_other_block_downsamples_while_larger_than_2x2(
    in_shape: tuple[int, ...], depth: int, downsamples: int
) -> None:
    model = _resnet(in_shape, depth=depth)
    assert len(model.blocks) == depth
    assert len(_strided(model)) == downsamples
    assert model.head[-1].in_features == 4 * 2**downsamples  # channels double per downsample
    assert model(torch.randn(2, *in_shape)).shape == (2, 10)


def test_residual_blocks_project_only_when_downsampling() -> None:
    model = _resnet(depth=4, skip="residual", batchnorm=True)
    bodies = [b.body for b in model.blocks]
    assert all(isinstance(b, Residual) for b in bodies)
    projected = [not isinstance(b.shortcut, nn.Identity) for b in bodies]
    assert projected == [False, True, False, True]
    conv, bn = bodies[1].shortcut
    assert conv.kernel_size == (1, 1) and conv.stride == (2, 2)
    assert (conv.in_channels, conv.out_channels) == (4, 8)
    assert isinstance(bn, nn.BatchNorm2d)


def test_residual_block_adds_input_before_the_final_activation() -> None:
    torch.manual_seed(0)
    block = _resnet(depth=1, skip="residual").blocks[0]
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(block(x), torch.relu(x + block.body.fn(x)))


def test_plain_network_has_no_shortcuts() -> None:
    model = _resnet(depth=4, skip="none")
    assert not any(isinstance(m, (Residual, Highway)) for m in model.modules())
    block = model.blocks[0]
    assert isinstance(block, BasicBlock)
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(block(x), torch.relu(block.body(x)))


def test_highway_blocks_are_gated() -> None:
    model = _resnet(depth=3, skip="highway")
    assert [type(b.body) for b in model.blocks] == [Highway] * 3


def test_basic_block_layout_with_batchnorm() -> None:
    block = _resnet(batchnorm=True, activation="silu", skip="none").blocks[0]
    assert [type(m) for m in block.body] == [
        nn.Conv2d,
        nn.BatchNorm2d,
        nn.SiLU,
        nn.Conv2d,
        nn.BatchNorm2d,
    ]
    assert all(m.bias is None for m in block.body if isinstance(m, nn.Conv2d))
    assert isinstance(block.act, nn.SiLU)


@pytest.mark.parametrize("in_shape", [(64,), (1, 1, 8, 8)])
def test_resnet_rejects_non_image_input_shape(in_shape: tuple[int, ...]) -> None:
    with pytest.raises(ModelConfigError, match=r"model 'resnet' needs in_shape"):
        _resnet(in_shape)


@pytest.mark.parametrize(("kernel", "n_params"), [(3, 386), (5, 962)])
def test_kernel_size_applies_to_stem_and_blocks(kernel: int, n_params: int) -> None:
    # depth 1, width 4, 1 channel in, no BatchNorm, no skip: stem 4 * k * k + 4, the block's
    # two convs 2 * (16 * k * k + 4), head 4 * 10 + 10.
    model = _resnet(depth=1, kernel=kernel)
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert n_params == 4 * kernel**2 + 4 + 2 * (16 * kernel**2 + 4) + 50
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_kernel_5_downsamples_like_kernel_3() -> None:
    for kernel in (3, 5):
        model = _resnet(depth=2, kernel=kernel)
        strided = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
        assert [(m.kernel_size, m.padding) for m in strided] == [
            ((kernel, kernel), (kernel // 2, kernel // 2))
        ]
        assert model.blocks(model.stem(torch.randn(1, 1, 8, 8))).shape == (1, 8, 4, 4)
