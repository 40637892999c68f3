"""An MLP with a width per hidden layer, e.g. the rings network [2 -> 32 -> 32 -> 16 -> 1].

``create_model("mlp")`` gives every hidden layer the same width; this builds the same blocks
(``models.mlp.dense_block``: linear, BatchNorm, activation, dropout) with widths of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from models.config import ModelConfig
from models.errors import ModelConfigError, check_int
from models.layers import init_weights
from models.mlp import dense_block


def layered_mlp(
    in_features: int,
    widths: Sequence[int],
    num_outputs: int,
    *,
    activation: str = "relu",
    init: str = "default",
    dropout: float = 0.0,
    batchnorm: bool = False,
) -> nn.Sequential:
    """Flatten, one dense block per entry of ``widths``, then a linear head.

    Args:
        in_features: inputs per sample (after flattening).
        widths: hidden units of each hidden layer, input side first; at least one.
        num_outputs: size of the linear head's output.
        activation, init, dropout, batchnorm: as for ``create_model``.

    Raises:
        ModelConfigError: no widths, or a value ``create_model`` would refuse.
    """
    if not widths:
        raise ModelConfigError("widths must name at least one hidden layer, got []")
    # ModelConfig checks the shared values once; dense_block reads them from it.
    cfg = ModelConfig(
        in_shape=(in_features,),
        num_outputs=num_outputs,
        depth=len(widths),
        width=widths[0],
        activation=activation,
        init=init,
        dropout=dropout,
        batchnorm=batchnorm,
    )
    layers: list[nn.Module] = [nn.Flatten()]
    n_in = cfg.in_features
    for width in widths:
        n_out = check_int("width", width, minimum=1)
        layers.append(dense_block(n_in, n_out, cfg))
        n_in = n_out
    layers.append(nn.Linear(n_in, cfg.num_outputs))
    return init_weights(nn.Sequential(*layers), cfg.init, cfg.activation)  # type: ignore[return-value]
