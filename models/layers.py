"""Layer factories looked up by name: activations, initialisation, skips, pooling, kernels.

Each hyperparameter the search space names (activation, init, skip, pool, kernel) maps to
exactly one entry here, so the models stay free of string comparisons and the names stay in
one place.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from models.errors import ModelConfigError, check_choice
from models.vocabulary import INITS, SKIPS

# --- activations -------------------------------------------------------------------------------

LEAKY_RELU_SLOPE = 0.01  # nn.LeakyReLU's default; the He gain for leaky_relu must use the same

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,  # negative slope LEAKY_RELU_SLOPE
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,  # Swish with beta = 1 (Ramachandran et al. 2017) is exactly SiLU
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def create_act(act: str | type[nn.Module]) -> nn.Module:
    """A fresh activation module from a name in ACTIVATIONS or from a module class."""
    if isinstance(act, type) and issubclass(act, nn.Module):
        return act()
    return ACTIVATIONS[check_choice("activation", act, ACTIVATIONS)]()


# --- weight initialisation ---------------------------------------------------------------------


_WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def gain_args(activation: str) -> tuple[str, float | None]:
    """Arguments for ``nn.init.calculate_gain`` that suit ``activation``.

    calculate_gain knows relu, leaky_relu, tanh and sigmoid. ELU, GELU and SiLU have no entry;
    they behave like ReLU for positive inputs and are near zero for negative ones, so the
    ReLU gain sqrt(2) is the usual stand-in.
    """
    check_choice("activation", activation, ACTIVATIONS)
    if activation == "leaky_relu":
        return "leaky_relu", LEAKY_RELU_SLOPE
    if activation in ("tanh", "sigmoid"):
        return activation, None
    return "relu", None


def init_weights(module: nn.Module, scheme: str, activation: str = "relu") -> nn.Module:
    """Initialise each linear/conv layer of ``module`` by ``scheme``, with ``activation``'s gain.

    Weights follow the scheme, biases become zero, BatchNorm gets weight 1 and bias 0, and
    highway gates get their negative bias back. ``"default"`` changes nothing. Returns ``module``.
    """
    check_choice("init", scheme, INITS)
    nonlinearity, param = gain_args(activation)
    if scheme != "default":
        module.apply(partial(_init_module, scheme=scheme, nonlinearity=nonlinearity, param=param))
    return module


def _init_module(m: nn.Module, *, scheme: str, nonlinearity: str, param: float | None) -> None:
    if isinstance(m, _WEIGHT_LAYERS):
        _init_weight(m.weight, scheme, nonlinearity, param)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, _NORM_LAYERS) and m.affine:
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    # Module.apply visits children before their parent, so the gate Linear/Conv has just had
    # its bias zeroed above; the Highway parent puts the negative bias back here.
    if isinstance(m, Highway):
        m.reset_gate()


def _init_weight(w: torch.Tensor, scheme: str, nonlinearity: str, param: float | None) -> None:
    gain = nn.init.calculate_gain(nonlinearity, param)
    slope = param or 0.0  # kaiming_* take the leaky slope as `a` and ignore it otherwise
    match scheme:
        case "xavier_uniform":
            nn.init.xavier_uniform_(w, gain=gain)
        case "xavier_normal":
            nn.init.xavier_normal_(w, gain=gain)
        case "he_uniform":
            nn.init.kaiming_uniform_(w, a=slope, mode="fan_in", nonlinearity=nonlinearity)
        case "he_normal":
            nn.init.kaiming_normal_(w, a=slope, mode="fan_in", nonlinearity=nonlinearity)
        case "orthogonal":
            nn.init.orthogonal_(w, gain=gain)
        case "naive_normal":
            nn.init.normal_(w, mean=0.0, std=1.0)
        case _:  # pragma: no cover - init_weights checked the name
            raise AssertionError(scheme)


# --- skip connections --------------------------------------------------------------------------


# Srivastava et al. 2015 start the transform gate's bias at -1 to -3 so T = sigmoid(b) is small
# and a deep highway net starts close to passing its input through; -1 gives T ~ 0.27.
HIGHWAY_GATE_BIAS = -1.0


class Residual(nn.Module):
    """``shortcut(x) + fn(x)`` (He et al. 2016); the shortcut is identity when shapes match."""

    def __init__(self, fn: nn.Module, shortcut: nn.Module | None = None) -> None:
        super().__init__()
        self.fn = fn
        self.shortcut = shortcut if shortcut is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.fn(x)


class Highway(nn.Module):
    """``T * fn(x) + (1 - T) * carry(x)`` with ``T = sigmoid(gate(x))`` (Srivastava et al. 2015)."""

    def __init__(
        self,
        fn: nn.Module,
        gate: nn.Linear | nn.Conv2d,
        carry: nn.Module | None = None,
        *,
        gate_bias: float = HIGHWAY_GATE_BIAS,
    ) -> None:
        super().__init__()
        self.fn = fn
        self.gate = gate
        self.carry = carry if carry is not None else nn.Identity()
        self.gate_bias = gate_bias
        self.reset_gate()

    def reset_gate(self) -> None:
        """Set the gate bias to ``gate_bias`` (negative: start by mostly carrying x through)."""
        with torch.no_grad():
            self.gate.bias.fill_(self.gate_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch.sigmoid rather than an nn.Sigmoid module: the gate is not an activation layer,
        # and layer_stats should not report it as one.
        t = torch.sigmoid(self.gate(x))
        return t * self.fn(x) + (1.0 - t) * self.carry(x)


def projection(
    in_dim: int, out_dim: int, *, spatial: bool, stride: int = 1, batchnorm: bool = False
) -> nn.Module:
    """A 1x1 conv (``spatial``) or linear map that makes a shortcut match a block's output.

    With ``batchnorm`` it is followed by BatchNorm, like the block it runs beside (ResNet's
    option B shortcut), and has no bias of its own.
    """
    if spatial:
        layer: nn.Module = nn.Conv2d(in_dim, out_dim, 1, stride=stride, bias=not batchnorm)
        norm: nn.Module = nn.BatchNorm2d(out_dim)
    else:
        if stride != 1:
            raise ValueError("a linear projection cannot have a stride")
        layer, norm = nn.Linear(in_dim, out_dim, bias=not batchnorm), nn.BatchNorm1d(out_dim)
    return nn.Sequential(layer, norm) if batchnorm else layer


def make_skip(
    kind: str,
    fn: nn.Module,
    *,
    in_dim: int,
    out_dim: int,
    spatial: bool,
    stride: int = 1,
    batchnorm: bool = False,
) -> nn.Module:
    """Wrap block ``fn`` (mapping ``in_dim`` to ``out_dim`` features/channels) with skip ``kind``.

    ``none`` returns ``fn`` itself (no wrapper, no extra work); ``residual`` and ``highway`` add
    a projection shortcut when the channel count or the stride changes the shape.
    """
    check_choice("skip", kind, SKIPS)
    if kind == "none":
        return fn
    reshaped = in_dim != out_dim or stride != 1
    shortcut = (
        projection(in_dim, out_dim, spatial=spatial, stride=stride, batchnorm=batchnorm)
        if reshaped
        else None
    )
    if kind == "residual":
        return Residual(fn, shortcut)
    gate = nn.Conv2d(in_dim, out_dim, 1, stride=stride) if spatial else nn.Linear(in_dim, out_dim)
    return Highway(fn, gate, shortcut)


# --- pooling and kernels -----------------------------------------------------------------------

POOLS: dict[str, type[nn.Module]] = {
    "max": nn.MaxPool2d,  # keeps the strongest response: small shifts change little
    "avg": nn.AvgPool2d,  # keeps the mean: smoother, passes gradient to every input
}


def create_pool(pool: str) -> nn.Module:
    """A fresh 2x2, stride-2 pooling module of kind ``pool`` (a key of POOLS)."""
    return POOLS[check_choice("pool", pool, POOLS)](2)


def conv2d(
    in_channels: int, out_channels: int, kernel: int, *, stride: int = 1, bias: bool = True
) -> nn.Conv2d:
    """A ``kernel`` x ``kernel`` conv with padding ``kernel // 2``: size-preserving at stride 1."""
    return nn.Conv2d(
        in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=bias
    )


def norm_layer(num_features: int, *, spatial: bool) -> nn.Module:
    """BatchNorm for a conv (2d) or linear (1d) layer's output."""
    return nn.BatchNorm2d(num_features) if spatial else nn.BatchNorm1d(num_features)


def classifier_head(channels: int, num_outputs: int, dropout: float) -> nn.Sequential:
    """Global average pool, dropout (once, if any), linear: the head of cnn and resnet."""
    head: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if dropout > 0:
        head.append(nn.Dropout(dropout))
    head.append(nn.Linear(channels, num_outputs))
    return nn.Sequential(*head)


# --- helpers for own networks ([model] entry) --------------------------------------------------
# The built-in vocabulary (activation, init, batchnorm, dropout) for networks users write
# themselves: each takes the value a study's [space] gives and returns a module or function.


def create_init(scheme: str, activation: str = "relu") -> Callable[[nn.Module], nn.Module]:
    """A function that initialises a module's linear/conv layers by ``scheme`` (one of INITS),
    with the gain that suits ``activation``: ``create_init("he_normal", "relu")(net)``."""
    check_choice("init", scheme, INITS)
    check_choice("activation", activation, ACTIVATIONS)
    return partial(init_weights, scheme=scheme, activation=activation)


def create_norm(num_features: int, *, batchnorm: bool, spatial: bool) -> nn.Module:
    """BatchNorm (2d after a conv when ``spatial``, 1d after a linear layer) when
    ``batchnorm``, else an identity: a [space] key ``batchnorm = {choices = [true, false]}``
    maps straight onto it."""
    return norm_layer(num_features, spatial=spatial) if batchnorm else nn.Identity()


def create_dropout(rate: float, *, spatial: bool = False) -> nn.Module:
    """Inverted dropout at ``rate`` in [0, 1) (Dropout2d, whole channels, when ``spatial``);
    an identity at 0."""
    if not 0 <= rate < 1:
        raise ModelConfigError(f"dropout must be in [0, 1), got {rate!r}")
    if rate == 0:
        return nn.Identity()
    return nn.Dropout2d(rate) if spatial else nn.Dropout(rate)
