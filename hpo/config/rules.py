"""The rules every part of a study file is checked by: the bounds of the values that size
work, predicates on values, and the error reporter (one line: file, key, what is allowed).

Pure: shared by hpo.config.spec and hpo.config.space, no torch, no Optuna.
"""

from __future__ import annotations

import difflib
import math
import sys
from collections.abc import Callable
from typing import Any

from hpo.errors import SpecError

MAX_NAME_LENGTH = 128  # characters of a study name
# Bounds of the keys that size a network or a run: beyond what the models and data sets can
# use, and where a value would stall every worker (depth 10,000 takes seconds to estimate
# and hours to train). The memory guard judges what fits between them.
MAX_DEPTH = 64  # blocks / hidden layers: ResNet-110 has 54 basic blocks; the lectures go to 16
MAX_WIDTH = 8192  # units / first-stage channels (mlp 8000 x 8: 448M weights, a real case)
MAX_BATCH = 65536  # above the largest training split (mnist: 60,000)
MAX_EPOCHS = 10_000  # epochs of a trial; warmup and patience count epochs too
MAX_TRIALS = 1_000_000  # a study's budget
MAX_KEEP = 100  # kept models of a study: each is a file in the artifact store
# lr, weight_decay and l1: above this a run only diverges, and past float32's range (3.4e38)
# the optimizer fails every trial with an overflow error.
MAX_RATE = 10
MAX_ENQUEUE = 1000  # [[enqueue]] tables of one file: each is read again at every relaunch
# Seeds: a worker adds WORKER_SEED_STRIDE x its index (up to 100,000: 1e9) to the sampler's,
# and the sum must stay a 32-bit seed (numpy takes 0 .. 2**32 - 1).
MAX_SEED = 2**31 - 1


# ---------------------------------------------------------------- predicates on values

Check = Callable[[Any], bool]  # one value -> whether it is allowed


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_seed(v: Any) -> bool:
    return is_int(v) and 0 <= v <= MAX_SEED


def is_number(v: Any) -> bool:
    """A finite int or float; an int past any float (TOML and JSON hold one) is none."""
    if is_int(v):
        return abs(v) <= sys.float_info.max  # math.isfinite would raise OverflowError
    return isinstance(v, float) and math.isfinite(v)


def int_in(low: int, high: int) -> tuple[Check, str]:
    return (lambda v: is_int(v) and low <= v <= high), f"an integer in [{low}, {high}]"


def one_of(options: Any) -> tuple[Check, str]:
    names = sorted(options)
    return (lambda v: v in names), "one of: " + ", ".join(names)


class Reporter:
    """Builds SpecErrors of the form '<source>: <key>: <problem>'."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __call__(self, key: str, problem: str) -> SpecError:
        return SpecError(f"{escaped(self.source)}: {escaped(key)}: {problem}")


def escaped(text: str) -> str:
    """`text` with control characters written as escapes: a key or path of a study file is
    data, and a newline or escape sequence in one must not break or rewrite the error line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def is_named(value: Any, names: Any) -> bool:
    """Whether `value` is one of the string `names` (a list or a number is not, and a
    list must not reach a set's `in`: unhashable)."""
    return isinstance(value, str) and value in names


def listed(names: Any) -> str:
    return ", ".join(sorted(names))


def unknown_text(key: str, allowed: Any, what: str) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {what} {key!r}{hint}; allowed: {listed(allowed)}"
