"""`[study] metrics` (a multi-objective study), `[constraints]` and `[study] latency_batch`.

Pure: no torch, no Optuna. hpo.config.spec calls `parse_objectives` once it has read the
single `metric`, and keeps what it returns on the StudySpec.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo.config.rules import is_int, is_number

if TYPE_CHECKING:
    from hpo.config.rules import Reporter

# What hpo measures on every trial, and the direction each one is optimized in: accuracy up,
# the rest (loss, size, speed, cost) down.
METRIC_DIRECTIONS: dict[str, str] = {
    "val_accuracy": "maximize",
    "val_loss": "minimize",
    "params": "minimize",
    "latency_ms": "minimize",
    "train_seconds": "minimize",
}
# [constraints] key -> the measured metric it limits (a trial above the limit is infeasible).
CONSTRAINTS: dict[str, str] = {"max_params": "params", "max_latency_ms": "latency_ms"}
MIN_METRICS, MAX_METRICS = 2, 3  # more objectives than three: a front too large to read
MAX_LATENCY_BATCH = 65536  # samples per timed forward pass; as [space] batch_size
MAX_PARAMS_LIMIT = 10**12  # far above any network MAX_DEPTH x MAX_WIDTH builds


@dataclass(frozen=True)
class ConstraintSpec:
    """Limits on what a trial's network may cost; None: no limit."""

    max_params: int | None = None  # parameters of the built network
    max_latency_ms: float | None = None  # median forward pass at latency_batch, in ms

    def limits(self) -> dict[str, float]:
        """The limits set, by constraint key (as Optuna's trial constraint keys)."""
        return {key: value for key, value in vars(self).items() if value is not None}


@dataclass(frozen=True)
class Objectives:
    """What parse_objectives read: () metrics for a single-objective study."""

    metrics: tuple[str, ...]
    constraints: ConstraintSpec
    latency_batch: int


def directions_of(metrics: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(METRIC_DIRECTIONS[m] for m in metrics)


def parse_objectives(study: Mapping[str, Any], constraints: Any, err: Reporter) -> Objectives:
    """Read `[study] metrics`, `[study] latency_batch` and `[constraints]`; SpecError on bad
    input, naming the key."""
    metrics = _parse_metrics(study, err)
    batch = study.get("latency_batch", 1)
    if not (is_int(batch) and 1 <= batch <= MAX_LATENCY_BATCH):
        raise err(
            "study.latency_batch",
            f"{batch!r} must be an integer in [1, {MAX_LATENCY_BATCH}] (samples per timed "
            "forward pass)",
        )
    return Objectives(metrics, _parse_constraints(constraints, err), batch)


def _parse_metrics(study: Mapping[str, Any], err: Reporter) -> tuple[str, ...]:
    if "metrics" not in study:
        return ()
    metrics = study["metrics"]
    allowed = ", ".join(METRIC_DIRECTIONS)
    if not isinstance(metrics, list):
        raise err("study.metrics", f"{metrics!r} must be a list of 2 or 3 of: {allowed}")
    if not metrics:  # a stored single-objective snapshot never holds the key: a user's []
        raise err("study.metrics", f"is empty; list 2 or 3 of: {allowed}")
    for metric in metrics:
        if not (isinstance(metric, str) and metric in METRIC_DIRECTIONS):
            raise err(
                "study.metrics", f"unknown metric {metric!r}{_close(metric)}; allowed: {allowed}"
            )
    if len(set(metrics)) != len(metrics):
        twice = next(m for m in metrics if metrics.count(m) > 1)
        raise err("study.metrics", f"{twice!r} is listed twice; list each metric once")
    if not MIN_METRICS <= len(metrics) <= MAX_METRICS:
        raise err(
            "study.metrics",
            f"{len(metrics)} metric(s); a multi-objective study takes {MIN_METRICS} or "
            f"{MAX_METRICS} (for one, write metric = {metrics[0]!r})",
        )
    for key in ("metric", "direction"):
        if key in study:
            raise err(
                f"study.{key}",
                f"cannot stand beside metrics: each metric's direction is fixed "
                f"({', '.join(f'{m} {METRIC_DIRECTIONS[m][:3]}' for m in metrics)}); "
                f"remove {key}",
            )
    return tuple(metrics)


def _parse_constraints(table: Any, err: Reporter) -> ConstraintSpec:
    if table is None:
        return ConstraintSpec()
    if not isinstance(table, Mapping):
        raise err("constraints", "must be a table, e.g. [constraints] max_params = 100_000")
    limits: dict[str, Any] = {}
    for key, value in table.items():
        if key not in CONSTRAINTS:
            raise err(
                f"constraints.{key}",
                f"hpo measures no such limit{_close(key, CONSTRAINTS)}; constraints: "
                + ", ".join(f"{k} (on {m})" for k, m in CONSTRAINTS.items()),
            )
        if value is None:  # a stored snapshot writes the unset ones as null
            continue
        if key == "max_params":
            if not (is_int(value) and 0 < value <= MAX_PARAMS_LIMIT):
                raise err(
                    "constraints.max_params",
                    f"{value!r} must be an integer in [1, {MAX_PARAMS_LIMIT}] (parameters)",
                )
        elif not (is_number(value) and value > 0):
            raise err(f"constraints.{key}", f"{value!r} must be a number of milliseconds > 0")
        limits[key] = value if key == "max_params" else float(value)
    return ConstraintSpec(**limits)


def check_beside_metrics(study: Mapping[str, Any], pruner: Any, err: Reporter) -> None:
    """What a multi-objective study refuses: a pruner (it judges one learning curve; a
    trade-off has none), stop_after (no single best value to plateau) and kept models
    (ranked by one value)."""
    name = pruner.get("name", "none") if isinstance(pruner, Mapping) else "none"
    if name != "none":
        raise err(
            "pruner.name",
            f"{name!r}: a pruner compares one learning curve, and a multi-objective study "
            'trades several metrics; set [pruner] name = "none" (the default beside metrics)',
        )
    if study.get("stop_after") is not None:
        raise err(
            "study.stop_after",
            "needs one best value to plateau; a multi-objective study has a front of them",
        )
    if study.get("keep", 0) not in (0, None):
        raise err(
            "study.keep",
            f"{study['keep']!r}: kept models are ranked by one value; a multi-objective study "
            "keeps none (keep = 0, the default beside metrics)",
        )


def _close(key: Any, names: Any = METRIC_DIRECTIONS) -> str:
    if not isinstance(key, str):
        return ""
    close = difflib.get_close_matches(key, list(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---------------------------------------------------------------- a trial's values


def needs_latency(metrics: tuple[str, ...], constraints: ConstraintSpec) -> bool:
    """Whether trials must time their network (a metric or a limit on latency_ms)."""
    return "latency_ms" in metrics or constraints.max_latency_ms is not None


def constraint_values(
    constraints: ConstraintSpec, measured: Mapping[str, float]
) -> dict[str, float]:
    """Optuna's constraint values by key: measured minus limit, so <= 0 is feasible."""
    return {
        key: float(measured[CONSTRAINTS[key]]) - limit
        for key, limit in constraints.limits().items()
    }


def broken_text(constraints: ConstraintSpec, measured: Mapping[str, float]) -> str:
    """The limits a trial breaks, in words ('' when none): why it ended infeasible."""
    return "; ".join(
        f"{CONSTRAINTS[key]} {measured[CONSTRAINTS[key]]:g} > {key} {limit:g}"
        for key, limit in constraints.limits().items()
        if measured[CONSTRAINTS[key]] > limit
    )


def objective_values(
    objectives: tuple[str, ...], measured: Mapping[str, float]
) -> float | tuple[float, ...]:
    """What a trial returns: the value of its one metric, or one value per metric in order."""
    values = tuple(float(measured[metric]) for metric in objectives)
    return values[0] if len(values) == 1 else values
