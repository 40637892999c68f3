"""The one error type of the models package, and the helpers that word its messages."""

from __future__ import annotations

import operator
from collections.abc import Iterable


class ModelConfigError(ValueError):
    """A model was asked for with a name that does not exist or a value out of range."""


def check_choice(kind: str, value: object, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise raise, listing what exists.

    The message reads ``unknown activation 'relu6'; choose one of: elu, gelu, ...`` so a
    user who mistyped a study file sees every valid spelling at once.
    """
    options = sorted(choices)
    if not isinstance(value, str) or value not in options:
        raise ModelConfigError(f"unknown {kind} {value!r}; choose one of: {', '.join(options)}")
    return value


def check_int(kind: str, value: object, *, minimum: int) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum``; otherwise raise."""
    # operator.index accepts int and numpy integers but not floats, strings or bools-as-strings;
    # bool is rejected explicitly because True would silently mean depth 1.
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ModelConfigError(f"{kind} must be an integer >= {minimum}, got {value!r}") from None
    if number < minimum:
        raise ModelConfigError(f"{kind} must be an integer >= {minimum}, got {number}")
    return number


def check_int_choice(kind: str, value: object, choices: Iterable[int]) -> int:
    """Return ``value`` if it is one of the integers ``choices``; otherwise raise."""
    options = sorted(choices)
    if isinstance(value, bool) or value not in options:
        allowed = ", ".join(map(str, options))
        raise ModelConfigError(f"unknown {kind} {value!r}; choose one of: {allowed}")
    return int(value)  # type: ignore[call-overload]
