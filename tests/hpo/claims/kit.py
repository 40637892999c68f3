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


def lr_run(bn: bool, lr: float, value: float | None) -> RunRecord:
    """A claim-4 run in setting 's' at one learning rate (value None: diverged)."""
    return record(value, {"setting": "s", "batchnorm": bn, "lr": lr, "seed": 0})


def drop_run(
    rate: float, train_acc: float, val_acc: float, train_loss: float, val_loss: float
) -> RunRecord:
    """A claim-5 run: final train/val accuracy and loss at one dropout rate."""
    return record(
        val_acc,
        {"dropout": rate, "seed": 0},
        final_train_accuracy=train_acc,
        final_train_loss=train_loss,
        val_loss=[1.0, val_loss],
    )
