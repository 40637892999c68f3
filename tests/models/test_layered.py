"""models.layered, models.textbook and models.probes: the pieces the claims report adds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models import ModelConfigError
from models.layered import layered_mlp
from models.probes import decision_grid
from models.textbook import TEXTBOOK_INITS, textbook_init


def test_layered_mlp_has_the_widths_asked_for() -> None:
    model = layered_mlp(2, [32, 32, 16], 1)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (2, 32),
        (32, 32),
        (32, 16),
        (16, 1),
    ]
    assert model(torch.randn(5, 2)).shape == (5, 1)


def test_layered_mlp_with_batchnorm_has_bias_free_linears_and_dropout_when_asked() -> None:
    model = layered_mlp(2, [8, 4], 1, batchnorm=True, dropout=0.5)
    hidden = [m for m in model.modules() if isinstance(m, nn.Linear)][:-1]
    assert all(m.bias is None for m in hidden)
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.modules()) == 2
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 2


@pytest.mark.parametrize("widths", [[], [8, 0], [8, -1]])
def test_layered_mlp_refuses_bad_widths(widths: list[int]) -> None:
    with pytest.raises(ModelConfigError, match="width"):
        layered_mlp(2, widths, 1)


@pytest.mark.parametrize(
    ("scheme", "std"),
    [("naive", 1.0), ("xavier", (2 / (512 + 512)) ** 0.5), ("he", (2 / 512) ** 0.5)],
)
def test_textbook_init_follows_the_rule_whatever_the_activation(scheme: str, std: float) -> None:
    torch.manual_seed(0)
    layer = nn.Linear(512, 512)
    textbook_init(nn.Sequential(layer, nn.Tanh()), scheme)
    assert layer.weight.std().item() == pytest.approx(std, rel=0.02)
    assert torch.count_nonzero(layer.bias) == 0


def test_textbook_init_refuses_an_unknown_scheme() -> None:
    assert TEXTBOOK_INITS == ("naive", "xavier", "he")
    with pytest.raises(ModelConfigError, match="unknown textbook init 'glorot'"):
        textbook_init(nn.Linear(2, 2), "glorot")


class FirstInput(nn.Module):
    """A model whose logit is 4 x its first input: P(class 1) rises left to right."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(4.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x[:, :1]


def test_decision_grid_rows_are_the_second_input_and_columns_the_first() -> None:
    model = FirstInput().train()
    grid = decision_grid(model, extent=1.0, size=3)
    assert grid.shape == (3, 3)
    expected = torch.sigmoid(torch.tensor([-4.0, 0.0, 4.0]))
    for row in grid:  # every row the same: the second input does not matter
        assert torch.allclose(row, expected)
    assert model.training  # mode restored


def test_decision_grid_refuses_a_bad_grid_or_a_multi_logit_model() -> None:
    with pytest.raises(ValueError, match="size >= 2"):
        decision_grid(FirstInput(), extent=1.0, size=1)
    with pytest.raises(ValueError, match="one logit"):
        decision_grid(nn.Linear(2, 3), extent=1.0, size=3)
