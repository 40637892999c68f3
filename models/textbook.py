"""The lectures' three initialisations, exactly as taught: one variance rule per scheme.

``models.layers.init_weights`` scales Xavier by the activation's gain (so with ReLU it is
He on square layers); the lectures compare the plain rules instead, whatever the
activation:

- ``naive``:  N(0, 1), regardless of fan-in;
- ``xavier``: N(0, 2 / (fan_in + fan_out)) (Glorot & Bengio 2010, gain 1);
- ``he``:     N(0, 2 / fan_in) (He et al. 2015, the ReLU gain).
"""

from __future__ import annotations

from torch import nn

from models.errors import check_choice

TEXTBOOK_INITS: tuple[str, ...] = ("naive", "xavier", "he")
_WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def textbook_init(model: nn.Module, scheme: str) -> nn.Module:
    """Draw every linear/conv weight of ``model`` by ``scheme`` and zero the biases."""
    check_choice("textbook init", scheme, TEXTBOOK_INITS)
    for m in model.modules():
        if not isinstance(m, _WEIGHT_LAYERS):
            continue
        if scheme == "naive":
            nn.init.normal_(m.weight, 0.0, 1.0)
        elif scheme == "xavier":
            nn.init.xavier_normal_(m.weight, gain=1.0)
        else:
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    return model
