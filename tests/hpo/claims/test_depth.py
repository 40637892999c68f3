"""hpo.claims.depth: claims 2 and 3's checks against hand-computed cases."""

from __future__ import annotations

from hpo.claims.depth import initialisation, vanishing_gradients
from tests.hpo.claims.kit import claim, record


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
