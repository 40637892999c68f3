"""hpo.claims.dropout: claim 5's checks against hand-computed cases."""

from __future__ import annotations

import pytest

from hpo.claims.dropout import dropout
from tests.hpo.claims.kit import claim, drop_run


def test_dropout_compares_the_gap_at_the_highest_rate_with_no_dropout() -> None:
    runs = [
        drop_run(0.0, 1.0, 0.90, 0.01, 0.41),  # gaps 0.10 and 0.40
        drop_run(0.5, 0.98, 0.92, 0.10, 0.30),  # 0.06, 0.20
        drop_run(0.8, 0.95, 0.91, 0.20, 0.30),  # 0.04 (-60%), 0.10 (-75%)
    ]
    parts = dropout(claim("dropout", runs))
    acc_gap, loss_gap, improves = parts["checks"]
    assert acc_gap.agrees is True
    assert "accuracy gap 0.1 at rate 0, 0.04 at rate 0.8" in acc_gap.because
    assert loss_gap.agrees is True
    assert improves.agrees is True  # 0.92 at rate 0.5 against 0.90
    assert parts["rows"][0][:2] == [0.0, 1]
    assert parts["rows"][0][4] == pytest.approx(0.10)


def test_dropout_disagrees_when_the_gap_stays() -> None:
    runs = [drop_run(0.0, 1.0, 0.93, 0.01, 0.3), drop_run(0.8, 1.0, 0.92, 0.02, 0.29)]
    acc_gap, loss_gap, improves = dropout(claim("dropout", runs))["checks"]
    assert (acc_gap.agrees, loss_gap.agrees, improves.agrees) == (False, False, False)
