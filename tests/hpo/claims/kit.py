"""Hand-made claims data for the analysis tests: runs with chosen numbers, no training."""

from __future__ import annotations

from typing import Any

from hpo.claims.load import ClaimRuns, RunRecord


def record(value: float | None, config: dict[str, Any], **attrs: Any) -> RunRecord:
    """A run with final validation accuracy `value` (None: diverged)."""
    state = "FAIL" if value is None else "COMPLETE"
    key = " ".join(f"{k}={v}" for k, v in config.items())
    return RunRecord(key, state, value, config, attrs)


def claim(name: str, runs: list[RunRecord], points: list[list[float]] | None = None) -> ClaimRuns:
    return ClaimRuns(name, f"claims-{name}", 1, "full", runs, points or [])
