"""Activation, init and skip-connection factories."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from models import ACTIVATIONS, INITS, SKIPS, ModelConfigError, create_act, create_model
from models.layers import (
    HIGHWAY_GATE_BIAS,
    LEAKY_RELU_SLOPE,
    Highway,
    Residual,
    init_weights,
    make_skip,
)

# --- activations -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_create_act_builds_a_fresh_module_of_the_registered_class(name: str) -> None:
    a, b = create_act(name), create_act(name)
    assert type(a) is ACTIVATIONS[name]
    assert a is not b  # one module per use, so forward hooks see each layer separately


def test_swish_is_silu_and_create_act_takes_a_class() -> None:
    assert ACTIVATIONS["swish"] is nn.SiLU
    assert isinstance(create_act(nn.Tanh), nn.Tanh)


def test_leaky_relu_slope_matches_the_gain_used_for_init() -> None:
    assert create_act("leaky_relu").negative_slope == LEAKY_RELU_SLOPE


def test_unknown_activation_lists_the_choices() -> None:
    with pytest.raises(ModelConfigError) as err:
        create_act("relu6")
    assert str(err.value) == (
        "unknown activation 'relu6'; choose one of: "
        "elu, gelu, leaky_relu, relu, sigmoid, silu, swish, tanh"
    )


# --- initialisation ----------------------------------------------------------------------------


def _bn_mlp(init: str = "default", activation: str = "relu") -> nn.Module:
    return create_model(
        "mlp", in_shape=(16,), num_outputs=3, depth=2, width=64, batchnorm=True, init=init,
        activation=activation,
    )  # fmt: skip


@pytest.mark.parametrize("init", [i for i in INITS if i != "default"])
def test_init_resets_batchnorm_and_zeroes_biases(init: str) -> None:
    model = _bn_mlp()
    with torch.no_grad():  # scramble everything init is supposed to set
        for p in model.parameters():
            p.uniform_(0.5, 1.5)
    init_weights(model, init, "relu")
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    assert bns
    for bn in bns:
        assert torch.equal(bn.weight, torch.ones_like(bn.weight))
        assert torch.equal(bn.bias, torch.zeros_like(bn.bias))
    assert torch.equal(model.head.bias, torch.zeros_like(model.head.bias))


def test_default_init_leaves_weights_alone() -> None:
    model = _bn_mlp()
    before = [p.clone() for p in model.parameters()]
    init_weights(model, "default", "relu")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize(
    ("init", "activation", "expected_std"),
    [
        # He: gain / sqrt(fan_in); relu-like activations without their own gain use sqrt(2)
        ("he_normal", "relu", math.sqrt(2 / 256)),
        ("he_uniform", "gelu", math.sqrt(2 / 256)),
        ("he_normal", "leaky_relu", math.sqrt(2 / (1 + LEAKY_RELU_SLOPE**2) / 256)),
        ("he_normal", "tanh", 5 / 3 / math.sqrt(256)),
        # Xavier: gain * sqrt(2 / (fan_in + fan_out)), square layer here
        ("xavier_normal", "sigmoid", math.sqrt(2 / 512)),
        ("xavier_uniform", "relu", math.sqrt(2) * math.sqrt(2 / 512)),
        ("orthogonal", "relu", math.sqrt(2) / math.sqrt(256)),
        ("naive_normal", "relu", 1.0),  # ignores fan-in on purpose
    ],
)
def test_init_weight_std_follows_scheme_and_gain(
    init: str, activation: str, expected_std: float
) -> None:
    torch.manual_seed(0)
    layer = nn.Linear(256, 256)
    init_weights(layer, init, activation)
    # 65k weights: the sample std is within ~1% of the true one; 5% leaves room, and a wrong
    # gain (sqrt(2) or more off) still fails by far.
    assert layer.weight.std().item() == pytest.approx(expected_std, rel=0.05)
    assert torch.equal(layer.bias, torch.zeros_like(layer.bias))


def test_unknown_init_lists_the_choices() -> None:
    with pytest.raises(ModelConfigError, match=r"unknown init 'kaiming'; choose one of: default,"):
        init_weights(nn.Linear(2, 2), "kaiming")


def _relu_stds(model: nn.Module, x: torch.Tensor) -> list[float]:
    """Std of every ReLU output, in forward order."""
    stds: list[float] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: stds.append(out.std().item()))
        for m in model.modules()
        if isinstance(m, nn.ReLU)
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return stds


def _deep_relu_mlp(init: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("mlp", in_shape=(256,), num_outputs=10, depth=10, width=256, init=init)


@pytest.fixture(scope="module")
def gaussian_batch() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(512, 256)  # standardized input: mean 0, std 1 per feature


# With a finite width the per-layer scale fluctuates (over 30 seeds the layer-10/layer-1 ratio
# under He init ranged 0.62-1.31), so the claim is checked for several weight draws.
SEEDS = range(5)


@pytest.mark.parametrize("seed", SEEDS)
def test_he_init_keeps_activation_scale_across_10_relu_layers(gaussian_batch, seed: int) -> None:
    stds = _relu_stds(_deep_relu_mlp("he_normal", seed), gaussian_batch)
    assert len(stds) == 10
    assert 0.5 < stds[-1] / stds[0] < 2.0


@pytest.mark.parametrize("seed", SEEDS)
def test_fan_in_without_relu_gain_shrinks_outside_the_factor_2_band(
    gaussian_batch, seed: int
) -> None:
    # Control for the test above: He's sqrt(2) gain is what keeps the scale. Without it
    # (LeCun, std 1/sqrt(fan_in)) the std halves every 2 layers, 9 layers -> ~2^-4.5, so the
    # factor-2 band is tight enough to catch a wrong gain.
    model = _deep_relu_mlp("default", seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=1 / math.sqrt(m.in_features))
                nn.init.zeros_(m.bias)
    stds = _relu_stds(model, gaussian_batch)
    assert stds[-1] / stds[0] < 0.1


@pytest.mark.parametrize("seed", SEEDS)
def test_naive_normal_init_explodes_across_10_relu_layers(gaussian_batch, seed: int) -> None:
    # N(0, 1) weights multiply the std by about sqrt(256 / 2) ~ 11 per layer: ~1e9 over 9.
    stds = _relu_stds(_deep_relu_mlp("naive_normal", seed), gaussian_batch)
    assert stds[-1] / stds[0] > 1e6


# --- skip connections --------------------------------------------------------------------------


def test_skip_none_returns_the_block_itself() -> None:
    block = nn.Linear(4, 4)
    assert make_skip("none", block, in_dim=4, out_dim=4, spatial=False) is block


def test_residual_is_identity_plus_block_when_shapes_match() -> None:
    block = nn.Linear(4, 4)
    skip = make_skip("residual", block, in_dim=4, out_dim=4, spatial=False)
    assert isinstance(skip, Residual)
    assert isinstance(skip.shortcut, nn.Identity)
    x = torch.randn(3, 4)
    torch.testing.assert_close(skip(x), x + block(x))


@pytest.mark.parametrize("batchnorm", [False, True])
def test_residual_projects_with_1x1_conv_when_channels_and_stride_change(batchnorm: bool) -> None:
    block = nn.Conv2d(4, 8, 3, stride=2, padding=1)
    skip = make_skip(
        "residual", block, in_dim=4, out_dim=8, spatial=True, stride=2, batchnorm=batchnorm
    )
    conv = skip.shortcut[0] if batchnorm else skip.shortcut
    assert isinstance(conv, nn.Conv2d)
    assert conv.kernel_size == (1, 1)
    assert conv.stride == (2, 2)
    assert (conv.bias is None) == batchnorm
    assert skip(torch.randn(2, 4, 8, 8)).shape == (2, 8, 4, 4)


def test_residual_projects_with_linear_when_features_change() -> None:
    skip = make_skip("residual", nn.Linear(6, 4), in_dim=6, out_dim=4, spatial=False)
    assert isinstance(skip.shortcut, nn.Linear)
    assert skip(torch.randn(3, 6)).shape == (3, 4)


@pytest.mark.parametrize("init", INITS)
def test_highway_gate_bias_is_negative_after_any_init(init: str) -> None:
    model = create_model("mlp", in_shape=(8,), num_outputs=2, depth=3, width=8, skip="highway")
    init_weights(model, init, "relu")  # init zeroes biases; the gate must get its own back
    gates = [m for m in model.modules() if isinstance(m, Highway)]
    assert len(gates) == 3
    for hw in gates:
        assert HIGHWAY_GATE_BIAS < 0
        assert torch.all(hw.gate.bias == HIGHWAY_GATE_BIAS)


def test_highway_mixes_block_and_carry_by_the_gate() -> None:
    block = nn.Linear(4, 4)
    skip = make_skip("highway", block, in_dim=4, out_dim=4, spatial=False)
    assert isinstance(skip, Highway)
    x = torch.randn(5, 4)
    t = torch.sigmoid(skip.gate(x))
    torch.testing.assert_close(skip(x), t * block(x) + (1 - t) * x)
    # With the negative bias and a zero gate weight, T = sigmoid(-1): mostly carry at start.
    nn.init.zeros_(skip.gate.weight)
    assert torch.sigmoid(skip.gate(x)).max().item() < 0.5


def test_highway_carry_is_projected_when_shapes_change() -> None:
    block = nn.Conv2d(3, 6, 3, padding=1)
    skip = make_skip("highway", block, in_dim=3, out_dim=6, spatial=True)
    assert isinstance(skip.carry, nn.Conv2d)
    assert skip(torch.randn(2, 3, 5, 5)).shape == (2, 6, 5, 5)


def test_unknown_skip_lists_the_choices() -> None:
    with pytest.raises(ModelConfigError, match=r"choose one of: highway, none, residual"):
        make_skip("dense", nn.Identity(), in_dim=1, out_dim=1, spatial=False)
    assert SKIPS == ("none", "residual", "highway")


# --- pooling and kernels -----------------------------------------------------------------------


def test_create_pool_halves_the_map_by_max_or_mean() -> None:
    from models.layers import POOLS, create_pool

    x = torch.tensor([[[[1.0, 2.0], [3.0, 6.0]]]])
    assert sorted(POOLS) == ["avg", "max"]
    assert create_pool("max")(x).item() == 6.0
    assert create_pool("avg")(x).item() == 3.0
    with pytest.raises(ModelConfigError, match="unknown pool 'sum'; choose one of: avg, max"):
        create_pool("sum")


@pytest.mark.parametrize("kernel", [3, 5])
def test_conv2d_pads_to_keep_the_size(kernel: int) -> None:
    from models.layers import conv2d

    conv = conv2d(2, 3, kernel, bias=False)
    assert conv.weight.shape == (3, 2, kernel, kernel) and conv.bias is None
    assert conv(torch.randn(1, 2, 7, 7)).shape == (1, 3, 7, 7)
    assert conv2d(2, 3, kernel, stride=2)(torch.randn(1, 2, 7, 7)).shape == (1, 3, 4, 4)


def test_the_torch_free_vocabulary_names_what_the_models_build() -> None:
    """models.vocabulary (what study files are validated against) matches the factories."""
    import inspect

    from models import POOLS, list_models
    from models.vocabulary import ACTIVATION_NAMES, MODEL_KEYS, MODEL_NAMES, POOL_NAMES

    assert set(ACTIVATION_NAMES) == set(ACTIVATIONS)
    assert set(POOL_NAMES) == set(POOLS)
    assert list(MODEL_NAMES) == list_models()
    searchable = set(inspect.signature(create_model).parameters) - {
        "name",
        "in_shape",
        "num_outputs",
    }
    assert searchable == MODEL_KEYS


def test_the_helpers_for_own_networks_map_the_vocabulary() -> None:
    from models import create_dropout, create_init, create_norm

    assert isinstance(create_norm(4, batchnorm=True, spatial=True), nn.BatchNorm2d)
    assert isinstance(create_norm(4, batchnorm=True, spatial=False), nn.BatchNorm1d)
    assert isinstance(create_norm(4, batchnorm=False, spatial=True), nn.Identity)
    assert isinstance(create_dropout(0.0), nn.Identity)
    assert isinstance(create_dropout(0.3), nn.Dropout) and create_dropout(0.3).p == 0.3
    assert isinstance(create_dropout(0.3, spatial=True), nn.Dropout2d)
    with pytest.raises(ModelConfigError, match=r"dropout must be in \[0, 1\), got 1\.5"):
        create_dropout(1.5)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(400, 300), nn.Linear(300, 2))
    assert create_init("naive_normal", "relu")(net) is net
    assert net[0].weight.std().item() == pytest.approx(1.0, rel=0.05)  # N(0, 1), not fan-in
    assert net[0].bias.abs().max().item() == 0.0
    with pytest.raises(ModelConfigError, match="unknown init 'nope'"):
        create_init("nope")
