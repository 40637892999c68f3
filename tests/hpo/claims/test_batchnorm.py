"""hpo.claims.batchnorm: claims 1 and 4's checks against hand-computed cases."""

from __future__ import annotations

import pytest

from hpo.claims.batchnorm import batchnorm_lr, rings_batchnorm
from tests.hpo.claims.kit import claim, lr_run, record


def curve_run(bn: bool, seed: int, curve: list[float]) -> object:
    return record(curve[-1], {"batchnorm": bn, "seed": seed}, val_accuracy=curve, train_loss=[1.0])


def test_rings_batchnorm_agrees_when_bn_gets_there_first_and_ends_as_accurate() -> None:
    runs = [
        curve_run(True, 0, [0.6, 0.92, 0.95]),  # reaches 0.9 at epoch 2
        curve_run(True, 1, [0.91, 0.94, 0.95]),  # epoch 1
        curve_run(True, 2, [0.5, 0.8, 0.955]),  # epoch 3
        curve_run(False, 0, [0.5, 0.7, 0.95]),  # epoch 3
        curve_run(False, 1, [0.5, 0.6, 0.8]),  # never
        curve_run(False, 2, [0.5, 0.91, 0.96]),  # epoch 2
    ]
    parts = rings_batchnorm(claim("rings-batchnorm", runs))
    faster, ends = parts["checks"]
    assert faster.agrees is True  # median 2 against 3
    assert "2 with BatchNorm, 3 without" in faster.because
    assert ends.agrees is True  # 0.95 against 0.95
    assert [row[3] for row in parts["rows"]] == [3.0, 2.0]  # without, with


def test_rings_batchnorm_does_not_agree_when_bn_ends_worse() -> None:
    runs = [curve_run(True, 0, [0.95, 0.93]), curve_run(False, 0, [0.5, 0.95])]
    faster, ends = rings_batchnorm(claim("rings-batchnorm", runs))["checks"]
    assert faster.agrees is True
    assert ends.agrees is False  # 0.93 < 0.95 - 0.01


def test_batchnorm_lr_is_the_ratio_of_the_highest_usable_learning_rates() -> None:
    runs = [
        lr_run(False, 0.01, 0.95),
        lr_run(False, 0.1, 0.93),
        lr_run(False, 1.0, None),  # diverged: accuracy 0
        lr_run(True, 0.01, 0.95),
        lr_run(True, 0.1, 0.96),
        lr_run(True, 1.0, 0.92),  # within 0.05 of the best (0.96)
    ]
    parts = batchnorm_lr(claim("batchnorm-lr", runs))
    higher, about = parts["checks"]
    assert higher.agrees is True
    assert "1 with BatchNorm, 0.1 without, x10" in higher.because
    assert about.agrees is True
    assert parts["rows"] == [["s", "without", 0.1, 0.95, 1], ["s", "with", 1.0, 0.96, 0]]


def test_batchnorm_lr_disagrees_when_both_stop_at_the_same_rate() -> None:
    runs = [lr_run(bn, lr, 0.95 if lr < 1 else 0.5) for bn in (False, True) for lr in (0.1, 1.0)]
    higher, about = batchnorm_lr(claim("batchnorm-lr", runs))["checks"]
    assert (higher.agrees, about.agrees) == (False, False)
    assert "x1" in higher.because


@pytest.mark.parametrize(
    ("with_bn", "without", "higher", "about"),
    [
        (0.0316, 0.01, True, False),  # half a decade, as the rounded grid stores it
        (0.0562, 0.01, True, True),  # three quarters: one grid step from 10x
        (0.1778, 0.01, True, True),  # 1.25 decades, rounded: one step above 10x
        (1.0, 0.0316, True, False),  # 1.5 decades: 31.6x is not about 10x
        (1.0, 0.01, True, False),  # 100x
    ],
)
def test_batchnorm_lr_steps_of_the_grid(
    with_bn: float, without: float, higher: bool, about: bool
) -> None:
    runs = [lr_run(False, without, 0.95), lr_run(False, with_bn, 0.5), lr_run(True, with_bn, 0.95)]
    checks = batchnorm_lr(claim("batchnorm-lr", runs))["checks"]
    assert [c.agrees for c in checks] == [higher, about]
