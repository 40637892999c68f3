"""Every sampler hpo offers for multi-objective studies runs one with constraints, and keeps
infeasible trials off the front."""

from __future__ import annotations

import optuna
import pytest

from hpo.study.samplers import build_sampler

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _objective(trial: optuna.Trial) -> tuple[float, float]:
    width = trial.suggest_int("width", 1, 64)
    lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
    trial.set_constraint("max_params", width - 32.0)  # widths over 32 are infeasible
    return 1 - 1 / (1 + width * lr), float(width)  # accuracy up with size, params down


@pytest.mark.parametrize("name", ["tpe", "random", "nsga2", "gp"])
def test_each_sampler_runs_a_constrained_two_metric_study(name: str) -> None:
    options = {"population_size": 4} if name == "nsga2" else {}
    options |= {"n_startup_trials": 3} if name in ("tpe", "gp") else {}
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=build_sampler(name, seed=1, options=options)
    )
    n_trials = 4 if name == "gp" else 10  # GP fits its models per trial: seconds each
    study.optimize(_objective, n_trials=n_trials)
    trials = study.get_trials()
    assert len(trials) == n_trials and all(t.state.name == "COMPLETE" for t in trials)
    front = study.best_trials
    assert front and all(t.params["width"] <= 32 for t in front)
    assert all(t.constraints["max_params"] <= 0 for t in front)
