"""The search space of a study file: its entries (int / float ranges, choices, fixed values),
what each [space] key may hold, their parsing and checks, and known params ([[enqueue]])
checked against the space.

Pure: no torch, no Optuna (hpo.study.space turns these entries into Optuna distributions).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hpo.config.rules import (
    MAX_BATCH,
    MAX_DEPTH,
    MAX_EPOCHS,
    MAX_RATE,
    MAX_SEED,
    MAX_WIDTH,
    Check,
    Reporter,
    int_in,
    is_int,
    is_number,
    listed,
    one_of,
    unknown_text,
)
from hpo.config.vocabulary import (
    AUGMENTS,
    OPTIMIZERS,
    SCHEDULES,
)
from models.vocabulary import (
    ACTIVATION_NAMES,
    INITS,
    KERNELS,
    MODEL_KEYS,
    POOL_NAMES,
    SKIPS,
)

# ---------------------------------------------------------------- search-space entries


@dataclass(frozen=True)
class IntParam:
    low: int
    high: int
    log: bool = False
    step: int = 1


@dataclass(frozen=True)
class FloatParam:
    low: float
    high: float
    log: bool = False
    step: float | None = None


@dataclass(frozen=True)
class CategoricalParam:
    choices: tuple[Any, ...]


@dataclass(frozen=True)
class FixedParam:
    value: Any


Param = IntParam | FloatParam | CategoricalParam | FixedParam


# ---------------------------------------------------------------- what the space may hold

# key -> (check of one value, what is allowed). Model keys map onto models.create_model,
# the others onto the training loop.
SPACE_KEYS: dict[str, tuple[Check, str]] = {
    "depth": int_in(1, MAX_DEPTH),
    "width": int_in(1, MAX_WIDTH),
    "activation": one_of(ACTIVATION_NAMES),
    "init": one_of(INITS),
    "dropout": (lambda v: is_number(v) and 0 <= v < 1, "a rate in [0, 1)"),
    "batchnorm": (lambda v: isinstance(v, bool), "true or false"),
    "skip": one_of(SKIPS),
    "lr": (lambda v: is_number(v) and 0 < v <= MAX_RATE, f"a learning rate in (0, {MAX_RATE}]"),
    "optimizer": one_of(OPTIMIZERS),
    "weight_decay": (
        lambda v: is_number(v) and 0 <= v <= MAX_RATE,
        f"a number in [0, {MAX_RATE}]",
    ),
    "momentum": (lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "batch_size": int_in(1, MAX_BATCH),
    "pool": one_of(POOL_NAMES),
    "kernel": (lambda v: is_int(v) and v in KERNELS, "one of: " + ", ".join(map(str, KERNELS))),
    "schedule": one_of(SCHEDULES),
    "warmup_epochs": int_in(0, MAX_EPOCHS),
    "augment": one_of(AUGMENTS),
    "l1": (lambda v: is_number(v) and 0 <= v <= MAX_RATE, f"a number in [0, {MAX_RATE}]"),
    "patience": (
        int_in(1, MAX_EPOCHS)[0],
        f"an integer in [1, {MAX_EPOCHS}] (leave it out: no early stop)",
    ),
}
# The keys the training loop takes; every other [space] key of an own network goes to its build.
TRAINING_KEYS = frozenset(SPACE_KEYS) - MODEL_KEYS
INT_KEYS = frozenset({"depth", "width", "batch_size", "kernel", "warmup_epochs", "patience"})
# An int range's ends are checked, and every value between when there are at most this many:
# the monotone checks (depth >= 1) hold between their ends, kernel 3..5 would yield 4.
CHECKED_RANGE = 1000
# Own networks ([model] entry): their own [space] keys are keyword arguments of build.
IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
OWN_KEY_PATTERN = re.compile(IDENTIFIER)  # a keyword argument of build
MAX_OWN_TEXT = 100  # characters of a string value passed to an own build


def _is_own_value(v: Any) -> bool:
    """A value hpo can pass to an own build and store as a trial param: a bounded number,
    true/false, or a short printable string."""
    if isinstance(v, bool):
        return True
    if is_int(v):
        return abs(v) <= MAX_SEED
    if isinstance(v, str):
        return len(v) <= MAX_OWN_TEXT and v.isprintable()
    return is_number(v)


OWN_VALUE: tuple[Check, str] = (
    _is_own_value,
    f"a number (integers within +-{MAX_SEED}), true/false or a printable string of at most "
    f"{MAX_OWN_TEXT} characters",
)


def known_params(
    params: Any, space: Mapping[str, Param], err: Reporter, *, where: str = ""
) -> dict[str, Any]:
    """A known configuration ([[enqueue]], `hpo enqueue`) checked against the space.

    Returns the searched values it sets, as the trial's suggest calls will return them, by
    key; the sampler draws the keys it leaves out. A key fixed in the space may repeat its
    fixed value and is dropped (fixed values are not trial params).
    """
    at = f"{where}: " if where else ""
    searched = [key for key, param in space.items() if not isinstance(param, FixedParam)]
    if not isinstance(params, Mapping) or not params:
        raise err(where or "params", "must be a table of hyperparameter values, e.g. {lr = 0.01}")
    known: dict[str, Any] = {}
    for key, value in params.items():
        here = f"{at}{key}"
        if key not in SPACE_KEYS and key not in space:  # an own network's key is in its space
            raise err(here, unknown_text(key, SPACE_KEYS, "hyperparameter"))
        param = space.get(key)
        if param is None:
            raise err(here, f"not in this study's [space]; searched: {listed(searched) or 'none'}")
        if isinstance(param, FixedParam):
            if not same_value(value, param.value):
                raise err(here, f"{value!r}: {key} is fixed at {param.value!r} in this study")
            continue
        known[key] = _known_value(value, param, here, err)
    if not known:
        raise err(
            where or "params", f"sets no searched key; searched: {listed(searched) or 'none'}"
        )
    return dict(sorted(known.items()))


def _known_value(
    value: Any, param: IntParam | FloatParam | CategoricalParam, here: str, err: Reporter
) -> Any:
    """`value` as the trial will suggest it; SpecError unless the space can yield it."""
    if isinstance(param, CategoricalParam):
        for choice in param.choices:
            if same_value(value, choice):
                return choice
        choices = ", ".join(map(repr, param.choices))
        raise err(here, f"{value!r} is not one of the choices: {choices}")
    if isinstance(param, IntParam):
        if not is_int(value):
            raise err(here, f"{value!r} must be an integer")
        inside = param.low <= value <= param.high and (value - param.low) % param.step == 0
    else:
        if not is_number(value):
            raise err(here, f"{value!r} must be a number")
        inside = param.low <= value <= param.high and on_step(value - param.low, param.step)
    if not inside:
        raise err(here, f"{value!r} is outside the searched range {range_text(param)}")
    return value if isinstance(param, IntParam) else float(value)


def same_value(value: Any, other: Any) -> bool:
    """Equal, and not a boolean against a number (True == 1 in Python, not in a study)."""
    return isinstance(value, bool) == isinstance(other, bool) and value == other


def on_step(offset: float, step: float | None) -> bool:
    """Whether `offset` from low is a whole number of steps, as Optuna's FloatDistribution
    judges a value (to 1e-8 of a step)."""
    if step is None:
        return True
    steps = offset / step
    return abs(steps - round(steps)) < 1e-8


def range_text(param: IntParam | FloatParam) -> str:
    extra = " (log)" if param.log else ""
    if param.step not in (None, 1) or isinstance(param.step, float):
        extra = f" in steps of {param.step}"
    return f"[{param.low}, {param.high}]{extra}"


def searched_values(param: Param | None) -> tuple[Any, ...]:
    """The values a fixed or categorical entry can take (none for a range or no entry)."""
    if isinstance(param, FixedParam):
        return (param.value,)
    if isinstance(param, CategoricalParam):
        return param.choices
    return ()


def parse_space(table: Mapping[str, Any], err: Reporter, *, own: bool = False) -> dict[str, Param]:
    """[space]; `own`: an own network's, whose build takes keys of its own too (checked
    against its signature by hpo.training.modelentry)."""
    if not isinstance(table, Mapping):
        raise err("space", "must be a table of hyperparameters")
    space: dict[str, Param] = {}
    for key, entry in table.items():
        if key in SPACE_KEYS:
            space[key] = _parse_param(key, entry, err)
        elif own and OWN_KEY_PATTERN.fullmatch(key):
            space[key] = _parse_param(key, entry, err, OWN_VALUE)
        elif own:
            raise err(f"space.{key}", "an own network's key must be a Python identifier")
        else:
            raise err(f"space.{key}", unknown_text(key, SPACE_KEYS, "hyperparameter"))
    return space


def _parse_param(
    key: str, entry: Any, err: Reporter, rule: tuple[Check, str] | None = None
) -> Param:
    check, allowed = rule or SPACE_KEYS[key]
    where = f"space.{key}"

    def ensure(value: Any, what: str = "value") -> None:
        if not check(value):
            raise err(where, f"{what} {value!r} is not allowed; {key} must be {allowed}")

    if not isinstance(entry, Mapping):
        ensure(entry)
        return FixedParam(entry)
    if "choices" in entry:
        extra = set(entry) - {"choices"}
        if extra:
            raise err(where, f"a categorical entry takes only 'choices', not {listed(extra)}")
        choices = entry["choices"]
        if not isinstance(choices, list) or not choices:
            raise err(where, "choices must be a non-empty list")
        for choice in choices:
            ensure(choice, "choice")
        if len(set(map(repr, choices))) != len(choices):
            raise err(where, f"choices {choices!r} repeat a value")
        return CategoricalParam(tuple(choices))
    return _parse_range(key, entry, ensure, err)


def _parse_range(
    key: str, entry: Mapping[str, Any], ensure: Callable[..., None], err: Reporter
) -> Param:
    where = f"space.{key}"
    extra = set(entry) - {"low", "high", "log", "step"}
    if extra:
        raise err(
            where, f"{unknown_text(min(extra), ('low', 'high', 'log', 'step', 'choices'), 'field')}"
        )
    if "low" not in entry or "high" not in entry:
        raise err(where, "a range needs both low and high (or use choices = [...])")
    low, high = entry["low"], entry["high"]
    log, step = entry.get("log", False), entry.get("step")
    if not isinstance(log, bool):
        raise err(where, f"log must be true or false, not {log!r}")
    for bound in (low, high):
        if not is_number(bound):
            raise err(where, f"low and high must be numbers, got {bound!r}")
        ensure(bound, "bound")
    if low > high:
        raise err(where, f"low {low!r} is greater than high {high!r}")
    if log and low <= 0:
        raise err(where, f"log scale needs low > 0, got {low!r}")
    if log and step is not None:
        raise err(where, "step cannot be combined with log scale")
    if step is not None and not (is_number(step) and step > 0):
        raise err(where, f"step must be a number > 0, got {step!r}")
    own_ints = key not in SPACE_KEYS and all(is_int(v) for v in (low, high, step or 1))
    if key not in INT_KEYS and not own_ints:
        return FloatParam(float(low), float(high), log, float(step) if step is not None else None)
    if not (is_int(low) and is_int(high) and (step is None or is_int(step))):
        raise err(where, f"{key} takes integers: low, high and step must be integers")
    param = IntParam(low, high, log, step if step is not None else 1)
    values = range(low, high + 1, param.step)
    if len(values) <= CHECKED_RANGE:
        for value in values:
            ensure(value, "range value")
    return param


def param_to_dict(param: Param) -> Any:
    if isinstance(param, FixedParam):
        return param.value
    if isinstance(param, CategoricalParam):
        return {"choices": list(param.choices)}
    entry = {"low": param.low, "high": param.high, "log": param.log}
    if param.step not in (None, 1) or isinstance(param.step, float):
        entry["step"] = param.step
    return entry
