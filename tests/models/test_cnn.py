"""CNN: pooling schedule, channel doubling, skip placement, input checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models import ModelConfigError, create_model
from models.layers import Highway, Residual


def _cnn(in_shape: tuple[int, ...] = (1, 8, 8), **kwargs) -> nn.Module:
    params = {"in_shape": in_shape, "num_outputs": 10, "depth": 3, "width": 4} | kwargs
    return create_model("cnn", **params)


def _count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


@pytest.mark.parametrize(
    ("in_shape", "max_pools"),
    [
        ((1, 8, 8), 2),  # 8 -> 4 -> 2
        ((1, 28, 28), 4),  # 28 -> 14 -> 7 -> 3 -> 1
        ((3, 32, 32), 4),  # 32 -> 16 -> 8 -> 4 -> 2
        ((3, 7, 5), 1),  # 7x5 -> 3x2: the smaller side decides
        ((1, 2, 2), 0),
    ],
)
@pytest.mark.parametrize("depth", [1, 2, 3, 6])
def test_cnn_pools_while_larger_than_2x2_and_works_at_any_depth(
    in_shape: tuple[int, ...], max_pools: int, depth: int
) -> None:
    model = _cnn(in_shape, depth=depth)
    pools = min(depth, max_pools)
    assert _count(model, nn.MaxPool2d) == pools
    assert _count(model, nn.Conv2d) == depth
    assert model(torch.randn(2, *in_shape)).shape == (2, 10)


def test_channels_start_at_width_and_double_at_each_pool() -> None:
    model = _cnn((1, 8, 8), depth=4, width=4)  # pools after blocks 1 and 2 only (8 -> 4 -> 2)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 4), (4, 8), (8, 16), (16, 16)]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert model.head[-1].in_features == 16


def test_dropout_sits_only_before_the_head() -> None:
    model = _cnn(dropout=0.2)
    assert [type(m) for m in model.head] == [
        nn.AdaptiveAvgPool2d,
        nn.Flatten,
        nn.Dropout,
        nn.Linear,
    ]
    assert _count(model, nn.Dropout) == 1


def test_conv_block_order_with_batchnorm() -> None:
    block = _cnn(batchnorm=True, activation="elu").features[0]
    assert [type(m) for m in block] == [nn.Conv2d, nn.BatchNorm2d, nn.ELU]
    assert block[0].bias is None


@pytest.mark.parametrize(("skip", "wrapper"), [("residual", Residual), ("highway", Highway)])
def test_skip_wraps_each_conv_block_with_projection_where_channels_change(
    skip: str, wrapper: type[nn.Module]
) -> None:
    model = _cnn((1, 8, 8), depth=4, skip=skip)
    wrapped = [m for m in model.features if isinstance(m, wrapper)]
    assert len(wrapped) == 4
    shortcut = "shortcut" if skip == "residual" else "carry"
    projected = [not isinstance(getattr(w, shortcut), nn.Identity) for w in wrapped]
    assert projected == [True, True, True, False]  # 1->4, 4->8, 8->16, 16->16
    # The pool follows the wrapped block, so the skip never spans a resolution change.
    assert isinstance(model.features[1], nn.MaxPool2d)


@pytest.mark.parametrize("in_shape", [(64,), (8, 8), (1, 1, 8, 8)])
def test_cnn_rejects_non_image_input_shape(in_shape: tuple[int, ...]) -> None:
    with pytest.raises(ModelConfigError, match=r"model 'cnn' needs in_shape \(C, H, W\)"):
        _cnn(in_shape)


def test_avg_pool_replaces_max_pool_and_changes_the_output() -> None:
    torch.manual_seed(0)
    max_net = _cnn()
    torch.manual_seed(0)
    avg_net = _cnn(pool="avg")
    assert _count(avg_net, nn.AvgPool2d) == 2 and _count(avg_net, nn.MaxPool2d) == 0
    assert _count(max_net, nn.MaxPool2d) == 2  # the default
    x = torch.randn(4, 1, 8, 8)
    assert not torch.allclose(max_net(x), avg_net(x))  # same weights, other pooling


@pytest.mark.parametrize(("kernel", "n_params"), [(3, 90), (5, 154)])
def test_kernel_size_sets_the_conv_and_keeps_the_map_size(kernel: int, n_params: int) -> None:
    # depth 1, width 4, 1 channel in, 10 out: conv 4 * k * k + 4 bias, head 4 * 10 + 10.
    model = _cnn(depth=1, kernel=kernel)
    assert sum(p.numel() for p in model.parameters()) == n_params == 4 * kernel**2 + 4 + 50
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert conv.kernel_size == (kernel, kernel)
    assert conv(torch.randn(1, 1, 8, 8)).shape == (1, 4, 8, 8)  # padding kernel // 2


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"kernel": 4}, "unknown kernel 4; choose one of: 3, 5"),
        ({"kernel": True}, "unknown kernel True"),
        ({"pool": "min"}, "unknown pool 'min'; choose one of: avg, max"),
    ],
)
def test_bad_pool_or_kernel_lists_the_choices(params: dict, message: str) -> None:
    with pytest.raises(ModelConfigError, match=message):
        _cnn(**params)
