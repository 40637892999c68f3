"""What the analysis hands to rendering: checks, curves, panels, boundaries, a claim's result.

Plain frozen data, numbers as numbers (the report formats them), and the rule that turns a
claim's checks into its verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Check:
    """One statement of the claim, tested against the data."""

    text: str  # the statement, in the lectures' terms
    agrees: bool | None  # None: the data cannot say (runs missing)
    because: str  # the numbers it rests on


@dataclass(frozen=True)
class Curve:
    label: str
    x: list[float]
    y: list[float | None]  # median over seeds
    low: list[float | None] = field(default_factory=list)  # min over seeds ([]: no band)
    high: list[float | None] = field(default_factory=list)  # max over seeds


@dataclass(frozen=True)
class Panel:
    title: str
    x_title: str
    y_title: str
    curves: list[Curve]
    x_log: bool = False
    y_log: bool = False


@dataclass(frozen=True)
class Boundary:
    """A run's decision boundary: P(class 1) in percent on a square grid, and data points."""

    label: str
    extent: float  # the grid spans [-extent, extent] on both inputs
    grid: list[list[int]]  # row i: i-th value of the second input, bottom to top
    points: list[list[float]]  # [x, y, label]


@dataclass(frozen=True)
class ClaimResult:
    name: str
    title: str
    statement: str
    study_name: str
    study_id: int
    runs: int
    diverged: int
    checks: list[Check]
    headers: list[str]
    rows: list[list[Any]]  # numbers as numbers; the report formats them
    panels: list[Panel]
    boundaries: list[Boundary] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return verdict([c.agrees for c in self.checks])


def verdict(agrees: Sequence[bool | None]) -> str:
    """'agrees' when every check does, 'does not agree' when none does, else 'partly agrees';
    checks the data cannot decide are left out."""
    known = [a for a in agrees if a is not None]
    if not known:
        return "not enough data"
    if all(known):
        return "agrees"
    return "does not agree" if not any(known) else "partly agrees"
