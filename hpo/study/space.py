"""Search-space declaration -> Optuna distributions -> a plain params dict for one trial."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from hpo.config.space import (
    TRAINING_KEYS,
    CategoricalParam,
    FixedParam,
    FloatParam,
    IntParam,
    Param,
)
from models.vocabulary import MODEL_KEYS


def to_distribution(param: IntParam | FloatParam | CategoricalParam) -> BaseDistribution:
    """The Optuna distribution of one searched entry."""
    if isinstance(param, IntParam):
        return IntDistribution(param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, FloatParam):
        return FloatDistribution(param.low, param.high, log=param.log, step=param.step)
    return CategoricalDistribution(param.choices)


def suggest_params(trial: optuna.Trial, space: Mapping[str, Param]) -> dict[str, Any]:
    """Ask the trial for every searched entry; fixed entries pass through unsampled.

    Fixed values are not stored as trial params, so the sampler only models what varies.
    """
    params: dict[str, Any] = {}
    for name, param in space.items():
        if isinstance(param, FixedParam):
            params[name] = param.value
        else:
            params[name] = _suggest(trial, name, param)
    return params


def _suggest(trial: optuna.Trial, name: str, param: Param) -> Any:
    if isinstance(param, IntParam):
        return trial.suggest_int(name, param.low, param.high, step=param.step, log=param.log)
    if isinstance(param, FloatParam):
        return trial.suggest_float(name, param.low, param.high, step=param.step, log=param.log)
    assert isinstance(param, CategoricalParam)
    return trial.suggest_categorical(name, list(param.choices))


def split_params(
    params: Mapping[str, Any], *, own: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model kwargs for models.create_model, training kwargs); `own`: an own network's
    build takes every key that is not a training key."""
    model = {
        k: v for k, v in params.items() if (k not in TRAINING_KEYS if own else k in MODEL_KEYS)
    }
    training = {k: v for k, v in params.items() if k not in model}
    return model, training
