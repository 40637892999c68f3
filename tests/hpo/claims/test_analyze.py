"""hpo.claims.analyze: the pure functions and each claim's checks against hand-computed cases."""

from __future__ import annotations

import math

import pytest

from hpo.claims.analyze import (
    analyze,
    band,
    batchnorm_lr,
    decades,
    dropout,
    epochs_to,
    highest_usable,
    initialisation,
    median,
    median_epochs,
    rings_batchnorm,
    slope,
    vanishing_gradients,
    verdict,
)
from tests.hpo.claims.kit import claim, record


@pytest.mark.parametrize(
    ("agrees", "expected"),
    [
        ([True, True], "agrees"),
        ([False, False], "does not agree"),
        ([True, False], "partly agrees"),
        ([True, None], "agrees"),
        ([None], "not enough data"),
        ([], "not enough data"),
    ],
)
def test_verdict(agrees: list[bool | None], expected: str) -> None:
    assert verdict(agrees) == expected


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


def grad_run(act: str, depth: int, init: float, final: float) -> object:
    config = {"activation": act, "depth": depth, "seed": 0}
    return record(0.9, config, diag_init_grad_norm=[init, 1.0], diag_final_grad_norm=[final, 1.0])


def test_vanishing_gradients_measures_decades_between_the_shallowest_and_deepest() -> None:
    runs = [
        grad_run("sigmoid", 2, 1.0, 1.0),
        grad_run("sigmoid", 8, 1e-3, 0.5),  # 3 decades at init, 0.3 after training
        grad_run("tanh", 2, 1.0, 1.0),
        grad_run("tanh", 8, 0.1, 0.1),  # 1 decade
        grad_run("relu", 2, 1.0, 1.0),
        grad_run("relu", 8, 0.5, 0.5),  # 0.3 decades
    ]
    init, final, between = vanishing_gradients(claim("vanishing-gradients", runs))["checks"]
    assert init.agrees is True
    assert "sigmoid falls 3 decades (slope -0.5 decades/layer)" in init.because
    assert "relu falls 0.3 decades" in init.because
    assert final.agrees is False  # sigmoid falls only 0.3 decades after training
    assert between.agrees is True


def std_run(act: str, init: str, stds: list[float], value: float | None = 0.9) -> object:
    return record(value, {"activation": act, "init": init, "seed": 0}, diag_init_act_std=stds)


def test_initialisation_checks_the_std_ratio_from_first_to_last_layer() -> None:
    runs = [
        std_run("relu", "naive", [1.0, 30.0, 900.0], None),  # explodes (x900)
        std_run("relu", "xavier", [1.0, 0.5, 0.25]),  # shrinks (x0.25 < 1/3)
        std_run("relu", "he", [1.0, 1.1, 0.9]),  # steady
        std_run("tanh", "naive", [0.95, 0.97, 0.98]),  # saturated
        std_run("tanh", "xavier", [0.6, 0.4, 0.3]),  # x0.5: steady within 3x
        std_run("tanh", "he", [0.8, 0.9, 0.9]),
    ]
    parts = initialisation(claim("initialisation", runs))
    assert [c.agrees for c in parts["checks"]] == [True, True, True, True, True]
    assert "x900" in parts["checks"][0].because
    naive_relu = parts["rows"][0]
    assert naive_relu[:5] == ["relu", "naive", 1.0, 900.0, 900.0]
    assert naive_relu[5:] == [0.0, 1]  # a diverged run counts as accuracy 0


def test_initialisation_disagrees_when_xavier_keeps_relu_steady() -> None:
    runs = [std_run("relu", "xavier", [1.0, 0.9, 0.8])]
    checks = {
        c.text.split(" (")[0]: c.agrees for c in initialisation(claim("init", runs))["checks"]
    }
    assert checks["Xavier lets ReLU's shrink"] is False
    assert checks["He keeps ReLU steady"] is None  # not run: cannot tell


def lr_run(bn: bool, lr: float, value: float | None) -> object:
    return record(value, {"setting": "s", "batchnorm": bn, "lr": lr, "seed": 0})


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


def drop_run(rate: float, train_acc: float, val_acc: float, train_loss: float, val_loss: float):
    return record(
        val_acc,
        {"dropout": rate, "seed": 0},
        final_train_accuracy=train_acc,
        final_train_loss=train_loss,
        val_loss=[1.0, val_loss],
    )


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


def test_analyze_orders_claims_as_the_report_does_and_skips_unknown_ones() -> None:
    runs = [
        claim("dropout", [drop_run(0.0, 1.0, 0.9, 0.0, 0.3)]),
        claim("from-the-future", []),
        claim("batchnorm-lr", [lr_run(True, 0.1, 0.9)]),
    ]
    results = analyze(runs)
    assert [r.name for r in results] == ["batchnorm-lr", "dropout"]
    assert results[0].title == "BatchNorm allows higher learning rates"
    assert results[0].runs == 1
