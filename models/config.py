"""ModelConfig: every architecture hyperparameter, validated once, shared by all models."""

from __future__ import annotations

import math
from dataclasses import dataclass

from models.errors import ModelConfigError, check_choice, check_int, check_int_choice
from models.layers import ACTIVATIONS, POOLS
from models.vocabulary import INITS, KERNELS, SKIPS


@dataclass(frozen=True)
class ModelConfig:
    """What ``create_model`` passes to a model class; invalid values raise ModelConfigError."""

    in_shape: tuple[int, ...]  # one sample's shape: (C, H, W) for images, (D,) for vectors
    num_outputs: int  # logits (classes) or regression targets of the linear head
    depth: int = 2  # hidden layers (mlp), conv blocks (cnn) or basic blocks (resnet)
    width: int = 32  # hidden units (mlp) or channels of the first stage (cnn, resnet)
    activation: str = "relu"  # a key of ACTIVATIONS; also picks the init gain
    init: str = "default"  # one of INITS; "default" keeps PyTorch's own initialisation
    dropout: float = 0.0  # inverted-dropout rate in [0, 1); 0 adds no Dropout module at all
    batchnorm: bool = False  # BatchNorm after each linear/conv (then bias-free), before activation
    skip: str = "none"  # one of SKIPS: plain blocks, x + f(x), or gated highway blocks
    pool: str = "max"  # one of POOLS: the cnn's 2x2 pooling (resnet downsamples by stride)
    kernel: int = 3  # one of KERNELS: conv kernel size of cnn and resnet (mlp has none)

    def __post_init__(self) -> None:
        # Normalise as well as check, so that numpy ints or a JSON list for in_shape work;
        # frozen dataclass, hence object.__setattr__.
        set_ = object.__setattr__
        set_(self, "in_shape", _check_shape(self.in_shape))
        set_(self, "num_outputs", check_int("num_outputs", self.num_outputs, minimum=1))
        set_(self, "depth", check_int("depth", self.depth, minimum=1))
        set_(self, "width", check_int("width", self.width, minimum=1))
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("init", self.init, INITS)
        check_choice("skip", self.skip, SKIPS)
        check_choice("pool", self.pool, POOLS)
        set_(self, "kernel", check_int_choice("kernel", self.kernel, KERNELS))
        set_(self, "dropout", _check_dropout(self.dropout))
        if self.batchnorm not in (True, False):
            raise ModelConfigError(f"batchnorm must be true or false, got {self.batchnorm!r}")
        set_(self, "batchnorm", bool(self.batchnorm))

    @property
    def in_features(self) -> int:
        """Number of inputs once a sample is flattened (what an MLP sees)."""
        return math.prod(self.in_shape)

    def image_shape(self, model: str) -> tuple[int, int, int]:
        """(C, H, W) of the input, or a ModelConfigError naming ``model`` if not an image."""
        if len(self.in_shape) != 3:
            raise ModelConfigError(
                f"model {model!r} needs in_shape (C, H, W) for images, got {self.in_shape}; "
                "use 'mlp' for vector inputs"
            )
        c, h, w = self.in_shape
        return c, h, w


def _check_shape(shape: object) -> tuple[int, ...]:
    try:
        dims = tuple(shape)  # type: ignore[arg-type]
    except TypeError:
        raise ModelConfigError(f"in_shape must be a tuple of sizes, got {shape!r}") from None
    if not dims:
        raise ModelConfigError("in_shape must have at least one dimension, got ()")
    return tuple(check_int("in_shape size", d, minimum=1) for d in dims)


def _check_dropout(rate: object) -> float:
    try:
        value = float(rate)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ModelConfigError(f"dropout must be a number in [0, 1), got {rate!r}") from None
    # Written as "not inside" so NaN fails too; 1.0 would zero every unit.
    if not 0.0 <= value < 1.0:
        raise ModelConfigError(f"dropout must be a number in [0, 1), got {rate!r}")
    return value
