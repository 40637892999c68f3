"""hpo.claims.numbers: the small pure functions, against hand-computed cases."""

from __future__ import annotations

import math

import pytest

from hpo.claims.numbers import (
    band,
    decades,
    epochs_to,
    highest_usable,
    median,
    median_epochs,
    slope,
)


def test_median_and_band_skip_missing_values() -> None:
    assert median([3.0, None, 1.0, float("nan"), 2.0]) == 2.0
    assert median([None]) is None
    mid, low, high = band([[1.0, 2.0, 3.0], [3.0, 4.0], [2.0, None, 5.0]])
    assert mid == [2.0, 3.0, 4.0]
    assert low == [1.0, 2.0, 3.0]
    assert high == [3.0, 4.0, 5.0]


def test_epochs_to_target_and_their_median() -> None:
    assert epochs_to([0.5, 0.89, 0.9, 0.95], 0.9) == 3
    assert epochs_to([0.5, None, 0.8], 0.9) is None
    assert median_epochs([3, 5, None]) == 5.0  # never = infinitely slow
    assert median_epochs([3, None]) == math.inf
    assert median_epochs([]) is None


def test_slope_decades_and_highest_usable() -> None:
    assert slope([2, 4, 8], [1.0, 0.0, -2.0]) == pytest.approx(-0.5)
    assert slope([2, 4], [1.0, None]) is None
    assert decades(1.0, 0.01) == pytest.approx(2.0)
    assert decades(0.0, 1.0) is None
    assert highest_usable({0.01: 0.95, 0.1: 0.93, 1.0: 0.5, 3.0: None}, 0.92) == 0.1
    assert highest_usable({0.01: 0.5}, 0.92) is None
