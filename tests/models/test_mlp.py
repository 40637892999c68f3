"""MLP structure, inverted dropout and BatchNorm behaviour."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from models import create_model
from models.layers import Residual


def _mlp(**kwargs) -> nn.Module:
    params = {"in_shape": (16,), "num_outputs": 3, "depth": 3, "width": 8} | kwargs
    return create_model("mlp", **params)


@pytest.mark.parametrize("in_shape", [(16,), (1, 8, 8), (3, 4, 4)])
def test_mlp_flattens_any_input_shape(in_shape: tuple[int, ...]) -> None:
    model = _mlp(in_shape=in_shape)
    assert model(torch.randn(5, *in_shape)).shape == (5, 3)
    assert model.features[1][0].in_features == math.prod(in_shape)


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_mlp_has_depth_hidden_layers_then_a_head(depth: int) -> None:
    model = _mlp(depth=depth, width=12)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == depth + 1
    assert all(m.out_features == 12 for m in linears[:-1])
    assert linears[-1] is model.head and model.head.out_features == 3


def test_block_order_is_linear_batchnorm_activation_dropout() -> None:
    model = _mlp(batchnorm=True, dropout=0.3, activation="gelu")
    block = model.features[1]
    assert [type(m) for m in block] == [nn.Linear, nn.BatchNorm1d, nn.GELU, nn.Dropout]
    assert block[0].bias is None  # BatchNorm's shift makes a bias redundant


def test_without_batchnorm_or_dropout_no_such_modules_exist() -> None:
    model = _mlp()
    assert [type(m) for m in model.features[1]] == [nn.Linear, nn.ReLU]
    assert model.features[1][0].bias is not None


def test_residual_projects_only_the_layer_that_changes_width() -> None:
    model = _mlp(in_shape=(16,), width=8, depth=3, skip="residual")
    skips = [m for m in model.modules() if isinstance(m, Residual)]
    assert len(skips) == 3
    assert isinstance(skips[0].shortcut, nn.Linear)  # 16 -> 8
    assert all(isinstance(s.shortcut, nn.Identity) for s in skips[1:])


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_inverted_dropout_keeps_the_expectation_in_train_and_is_identity_in_eval(
    p: float,
) -> None:
    dropout = next(m for m in _mlp(dropout=p).modules() if isinstance(m, nn.Dropout))
    torch.manual_seed(0)
    c, n = 1.5, 200_000
    x = torch.full((n,), c)
    out = dropout.train()(x)
    # Inverted dropout: kept units are scaled by 1/(1-p) at train time, nothing at eval.
    kept = out != 0
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], c / (1 - p)))
    # Each output is c/(1-p) with prob 1-p, else 0: mean c, std c*sqrt(p/(1-p)). The sample
    # mean of n outputs is within 5 standard errors of c except with prob ~6e-7.
    tolerance = 5 * c * math.sqrt(p / (1 - p) / n)
    assert abs(out.mean().item() - c) < tolerance
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    assert torch.equal(dropout.eval()(x), x)


def test_dropout_makes_train_mode_stochastic_and_eval_mode_deterministic() -> None:
    model = _mlp(dropout=0.5)
    x = torch.randn(32, 16)
    torch.manual_seed(0)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_batchnorm_train_and_eval_outputs_differ_before_running_stats_converge() -> None:
    torch.manual_seed(0)
    model = _mlp(batchnorm=True)
    x = 3 * torch.randn(64, 16) + 5  # far from the initial running mean 0 / var 1
    with torch.no_grad():
        train_out = model.train()(x)
        eval_out = model.eval()(x)
    assert not torch.allclose(train_out, eval_out, atol=1e-3)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    assert len(bns) == 3
    # Train mode normalises with the batch's own statistics: each unit has mean 0, var 1.
    h = model.features[1][1].train()(model.features[1][0](x))
    torch.testing.assert_close(h.mean(0), torch.zeros(8), atol=1e-5, rtol=0)


@pytest.mark.parametrize("init", ["default", "he_normal", "naive_normal", "orthogonal"])
def test_batchnorm_starts_with_gamma_1_beta_0(init: str) -> None:
    model = _mlp(batchnorm=True, init=init)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm1d)):
        assert torch.equal(bn.weight, torch.ones(8))
        assert torch.equal(bn.bias, torch.zeros(8))
