"""An own network for hpo: `[model] entry = "mynets:build"` in studies/own-model.toml.

hpo calls ``build(input_shape, num_classes, **params)`` for every trial, with ``input_shape``
(C, H, W) for images or (F,) for features, and every [space] key that is not a training key
(lr, optimizer, batch_size, ...) as a keyword. The built-in vocabulary (activation names,
init schemes, BatchNorm, dropout) comes from the public helpers in ``models``.
"""

from __future__ import annotations

from torch import nn

from models import create_act, create_dropout, create_init, create_norm


def build(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    blocks: int = 2,  # conv blocks (images) or hidden layers (features)
    channels: int = 16,  # channels of the first conv block (doubling), or hidden units
    activation: str = "relu",
    init: str = "default",
    batchnorm: bool = False,
    dropout: float = 0.0,
) -> nn.Module:
    """A small CNN for images (conv, norm, activation, 2x2 max pool while the map allows),
    a plain MLP for feature vectors; a linear head with one score per class."""
    layers: list[nn.Module] = []
    if len(input_shape) == 3:
        size, width_in = min(input_shape[1:]), input_shape[0]
        for block in range(blocks):
            width = channels * 2**block
            layers += [
                nn.Conv2d(width_in, width, 3, padding=1, bias=not batchnorm),
                create_norm(width, batchnorm=batchnorm, spatial=True),
                create_act(activation),
            ]
            if size >= 4:  # pool while the map is large enough: 8x8 digits take two
                layers.append(nn.MaxPool2d(2))
                size //= 2
            width_in = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    else:
        width_in = input_shape[0]
        for _ in range(blocks):
            layers += [
                nn.Linear(width_in, channels, bias=not batchnorm),
                create_norm(channels, batchnorm=batchnorm, spatial=False),
                create_act(activation),
            ]
            width_in = channels
    layers += [create_dropout(dropout), nn.Linear(width_in, num_classes)]
    return create_init(init, activation)(nn.Sequential(*layers))
