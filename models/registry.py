"""create_model / list_models: one dict from name to model class."""

from __future__ import annotations

from torch import nn

from models.cnn import CNN
from models.config import ModelConfig
from models.errors import check_choice
from models.mlp import MLP
from models.resnet import ResNet

MODELS: dict[str, type[nn.Module]] = {"cnn": CNN, "mlp": MLP, "resnet": ResNet}


def list_models() -> list[str]:
    """Names accepted by ``create_model``, sorted."""
    return sorted(MODELS)


def create_model(
    name: str,
    *,
    in_shape: tuple[int, ...],
    num_outputs: int,
    depth: int = 2,
    width: int = 32,
    activation: str = "relu",
    init: str = "default",
    dropout: float = 0.0,
    batchnorm: bool = False,
    skip: str = "none",
    pool: str = "max",
    kernel: int = 3,
) -> nn.Module:
    """Build model ``name`` with freshly initialised weights.

    Args:
        name: one of ``list_models()``.
        in_shape: one sample's shape, (C, H, W) for images or (D,) for vectors. The MLP
            flattens any shape; cnn and resnet need (C, H, W).
        num_outputs: size of the linear head's output.
        depth: hidden layers (mlp), conv blocks (cnn) or basic blocks (resnet); >= 1.
        width: hidden units (mlp) or first-stage channels (cnn, resnet); >= 1.
        activation: a key of ``ACTIVATIONS``.
        init: one of ``INITS``; also uses ``activation`` to choose the gain.
        dropout: inverted-dropout rate in [0, 1).
        batchnorm: BatchNorm after each linear/conv layer, before the activation.
        skip: one of ``SKIPS``.
        pool: one of ``POOLS``, the cnn's 2x2 pooling; resnet (strided convs) and mlp ignore it.
        kernel: one of ``KERNELS``, the conv kernel size of cnn and resnet; mlp ignores it.

    Raises:
        ModelConfigError: a name that does not exist or a value out of range; the message
            names the value and lists what is allowed.
    """
    model_cls = MODELS[check_choice("model", name, MODELS)]
    cfg = ModelConfig(
        in_shape=in_shape,
        num_outputs=num_outputs,
        depth=depth,
        width=width,
        activation=activation,
        init=init,
        dropout=dropout,
        batchnorm=batchnorm,
        skip=skip,
        pool=pool,
        kernel=kernel,
    )
    return model_cls(cfg)
