"""Sampler and pruner construction by name: the only place that knows Optuna's classes."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import optuna

from hpo.config.spec import Reporter, StudySpec
from hpo.config.vocabulary import PRUNERS, SAMPLERS

# Seeds of parallel workers are spread this far apart so that no two workers of one study,
# nor two studies of a comparison (seed 0, 1, 2, ...), draw the same random stream.
WORKER_SEED_STRIDE = 10_007


SEED_SPAN = 2**32  # numpy's RandomState, behind every sampler, takes seeds 0 .. 2**32 - 1


def worker_seed(study_seed: int, worker_index: int) -> int:
    """The seed a worker's sampler uses: distinct per worker, reproducible per index.

    A validated study seed (at most MAX_SEED) plus the offset of any default index stays
    below 2**32; a larger `--worker-index` wraps around instead of crashing the worker.
    """
    return (study_seed + WORKER_SEED_STRIDE * worker_index) % SEED_SPAN


def build_sampler(
    name: str, *, seed: int, options: Mapping[str, Any] | None = None
) -> optuna.samplers.BaseSampler:
    """Build a sampler; raises ValueError / TypeError on an unknown name or option."""
    options = dict(options or {})
    factories: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
        "random": optuna.samplers.RandomSampler,
        # constant_liar makes parallel TPE workers treat running trials as bad results,
        # so they spread out instead of proposing the same point.
        "tpe": lambda **kw: optuna.samplers.TPESampler(
            **{"constant_liar": True, "multivariate": True, **kw}
        ),
        "qmc": optuna.samplers.QMCSampler,
        "gp": optuna.samplers.GPSampler,
    }
    if name not in factories:
        raise ValueError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")
    with warnings.catch_warnings():
        # qmc and gp are experimental in Optuna: hpo chose them knowingly, and the user
        # would read the warning as a line of the error (or of the launch) that follows.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return factories[name](seed=seed, **options)


def build_pruner(
    name: str, *, max_epochs: int, options: Mapping[str, Any] | None = None
) -> optuna.pruners.BasePruner:
    """Build a pruner; steps are epochs, so Hyperband's max resource is the epoch budget."""
    options = dict(options or {})
    if name == "none":
        if options:
            raise TypeError(f"pruner 'none' takes no options, got {sorted(options)}")
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(
            **{"n_startup_trials": 5, "n_warmup_steps": 1, **options}
        )
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            **{"min_resource": 1, "max_resource": max_epochs, **options}
        )
    raise ValueError(f"unknown pruner {name!r}; choose one of: {', '.join(PRUNERS)}")


def check_options(spec: StudySpec, *, source: str) -> StudySpec:
    """The spec, once its sampler and pruner accept their options; SpecError naming the key.

    Built once each to let the installed Optuna judge its own keyword arguments.
    """
    err = Reporter(source)
    try:
        build_sampler(spec.sampler.name, seed=spec.sampler.seed, options=spec.sampler.options)
    except (TypeError, ValueError) as exc:
        problem = f"not accepted by the {spec.sampler.name} sampler: {exc}"
        raise err("sampler.options", problem) from None
    try:
        build_pruner(spec.pruner.name, max_epochs=spec.train.epochs, options=spec.pruner.options)
    except (TypeError, ValueError) as exc:
        raise err(
            "pruner.options", f"not accepted by the {spec.pruner.name} pruner: {exc}"
        ) from None
    return spec
