"""Sampler and pruner construction by name: the only place that knows Optuna's classes."""

from __future__ import annotations

import difflib
import inspect
import math
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import optuna

from hpo.config.rules import MAX_EPOCHS, MAX_TRIALS, Reporter
from hpo.config.spec import StudySpec
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
        # NSGA-II: the genetic algorithm of multi-objective search (constrained domination
        # reads the trials' constraints); one generation is population_size trials.
        "nsga2": optuna.samplers.NSGAIISampler,
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
    if name == "sha":  # Optuna's asynchronous successive halving; rungs 1, 3, 9, ... epochs
        return optuna.pruners.SuccessiveHalvingPruner(
            **{"min_resource": 1, "reduction_factor": 3, **options}
        )
    raise ValueError(f"unknown pruner {name!r}; choose one of: {', '.join(PRUNERS)}")


def check_options(spec: StudySpec, *, source: str) -> StudySpec:
    """The spec, once its sampler and pruner accept their options; SpecError naming the key.

    Each option is checked by name and type against the installed Optuna constructor's
    signature and by hpo's range rules (OPTION_RULES): Optuna accepts many bad values
    silently and every trial then fails. Then both are built once, for the checks that
    span options (TPE's group needs multivariate).
    """
    err = Reporter(source)
    sampler, pruner = spec.sampler, spec.pruner
    sampler_class = type(build_sampler(sampler.name, seed=sampler.seed))
    _check_option_values(sampler_class, "sampler", sampler.name, sampler.options, err)
    pruner_class = type(build_pruner(pruner.name, max_epochs=spec.train.epochs))
    _check_option_values(pruner_class, "pruner", pruner.name, pruner.options, err)
    _check_resources(spec, err)
    try:
        build_sampler(sampler.name, seed=sampler.seed, options=sampler.options)
    except (TypeError, ValueError) as exc:
        raise err(
            "[sampler] options", f"not accepted by the {sampler.name} sampler: {exc}"
        ) from None
    try:
        build_pruner(pruner.name, max_epochs=spec.train.epochs, options=pruner.options)
    except (TypeError, ValueError) as exc:
        raise err("[pruner] options", f"not accepted by the {pruner.name} pruner: {exc}") from None
    return spec


# A check of one option value, and what is allowed, in words.
_Rule = tuple[Callable[[Any], bool], str]
_EMPTY = inspect.Parameter.empty  # a parameter without annotation, or without default

# What a TOML value of each annotated type is: a bool is no int, an int is a float (unless
# past any float), and a NaN or infinity is no number an option can use. Other types
# (callables, samplers, arrays) are Python objects, which a study file cannot express.
_TOML_TYPES: dict[str, _Rule] = {
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "float": (
        lambda v: (
            (isinstance(v, int) and not isinstance(v, bool) and abs(v) <= sys.float_info.max)
            or (isinstance(v, float) and math.isfinite(v))
        ),
        "a finite number",
    ),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a string"),
}


def _ints(low: int, high: int) -> _Rule:
    def check(value: Any) -> bool:
        return _TOML_TYPES["int"][0](value) and low <= value <= high

    return check, f"an integer in [{low}, {high}]"


def _is_probability(value: Any) -> bool:
    return _TOML_TYPES["float"][0](value) and 0 <= value <= 1


MAX_EI_CANDIDATES = 10_000  # TPE scores this many candidates per parameter and trial

# hpo's range rules for the options whose bad values Optuna takes silently (every trial
# then fails) or refuses only deep in a trial; (section, name) -> option -> rule.
OPTION_RULES: dict[tuple[str, str], dict[str, _Rule]] = {
    ("sampler", "tpe"): {
        "n_startup_trials": _ints(0, MAX_TRIALS),
        "n_ei_candidates": _ints(1, MAX_EI_CANDIDATES),
        "prior_weight": (
            lambda v: _TOML_TYPES["float"][0](v) and v > 0,
            "a finite number > 0",
        ),
    },
    ("sampler", "gp"): {"n_startup_trials": _ints(0, MAX_TRIALS)},
    ("sampler", "nsga2"): {
        "population_size": _ints(2, MAX_TRIALS),  # Optuna refuses 1 only when it samples
        "mutation_prob": (lambda v: v is None or _is_probability(v), "a probability in [0, 1]"),
        "crossover_prob": (_is_probability, "a probability in [0, 1]"),
        "swapping_prob": (_is_probability, "a probability in [0, 1]"),
    },
    ("sampler", "qmc"): {"qmc_type": (lambda v: v in ("halton", "sobol"), "'halton' or 'sobol'")},
    ("pruner", "median"): {
        "n_startup_trials": _ints(0, MAX_TRIALS),
        "n_warmup_steps": _ints(0, MAX_EPOCHS),
        "interval_steps": _ints(1, MAX_EPOCHS),
        "n_min_trials": _ints(1, MAX_TRIALS),
    },
    ("pruner", "hyperband"): {
        "min_resource": _ints(1, MAX_EPOCHS),
        "max_resource": (
            lambda v: v == "auto" or _ints(1, MAX_EPOCHS)[0](v),
            f"'auto' or an integer in [1, {MAX_EPOCHS}]",
        ),
        "reduction_factor": _ints(2, MAX_EPOCHS),
        "bootstrap_count": _ints(0, MAX_TRIALS),
    },
    ("pruner", "sha"): {
        "min_resource": (
            lambda v: v == "auto" or _ints(1, MAX_EPOCHS)[0](v),
            f"'auto' or an integer in [1, {MAX_EPOCHS}]",
        ),
        "reduction_factor": _ints(2, MAX_EPOCHS),
        "min_early_stopping_rate": _ints(0, MAX_EPOCHS),
        "bootstrap_count": _ints(0, MAX_TRIALS),
    },
}


def _check_option_values(
    cls: type, section: str, name: str, options: Mapping[str, Any], err: Reporter
) -> None:
    """Refuse an option that `cls` does not take, or a value of the wrong type or range."""
    parameters = {
        key: p for key, p in inspect.signature(cls).parameters.items() if key != "seed"
    }  # hpo sets the seed ([sampler] seed): no option
    accepted = sorted(key for key, p in parameters.items() if _annotated(p) is not None)
    rules = OPTION_RULES.get((section, name), {})
    for key, value in options.items():
        where = f"[{section}] options.{key}"
        if key not in parameters:
            raise err(where, _unknown_option(key, accepted, f"the {name} {section}"))
        rule = rules.get(key) or _annotated(parameters[key])
        if rule is None:
            raise err(
                where,
                f"takes a Python object ({_annotation_text(parameters[key])}), which a study "
                f"file cannot express; leave it out (options of the {name} {section}: "
                f"{', '.join(accepted)})",
            )
        check, allowed = rule
        if not check(value):
            raise err(where, f"{value!r} is not allowed; it must be {allowed}")


def _unknown_option(key: str, accepted: list[str], owner: str) -> str:
    if not accepted:
        return f"{owner} takes no options"
    close = difflib.get_close_matches(key, accepted, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{owner} has no option {key!r}{hint}; accepted: {', '.join(accepted)}"


def _annotated(parameter: inspect.Parameter) -> _Rule | None:
    """What a study file may give for a constructor parameter, from its annotation (or its
    default's type when it has none); None when it takes only Python objects."""
    if parameter.annotation is _EMPTY and (
        parameter.default is None or parameter.default is _EMPTY
    ):
        return (lambda v: True), "any value"  # nothing to go by: Optuna judges it
    kinds = [
        _TOML_TYPES[t] for t in _union_members(_annotation_text(parameter)) if t in _TOML_TYPES
    ]
    if not kinds:
        return None
    return (lambda v: any(check(v) for check, _ in kinds)), " or ".join(w for _, w in kinds)


def _annotation_text(parameter: inspect.Parameter) -> str:
    """A parameter's annotation as written ('int | None'), or its default's type name."""
    annotation = parameter.annotation
    if annotation is _EMPTY:
        return type(parameter.default).__name__
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def _union_members(text: str) -> list[str]:
    """The members of a union annotation: 'Callable[[int], int] | None' -> two."""
    members, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char == "[") - (char == "]")
        if char == "|" and depth == 0:
            members.append(text[start:i].strip())
            start = i + 1
    return [*members, text[start:].strip()]


def _check_resources(spec: StudySpec, err: Reporter) -> None:
    """Hyperband needs min_resource <= max_resource (the epoch budget unless given): with
    fewer it has no bracket, and every trial fails."""
    if spec.pruner.name != "hyperband":
        return
    options = spec.pruner.options
    low = options.get("min_resource", 1)
    high = options.get("max_resource", spec.train.epochs)
    if high != "auto" and low > high:
        raise err(
            "[pruner] options.min_resource",
            f"{low} is above max_resource {high} (the epoch budget unless given); it must be "
            "at most that",
        )
