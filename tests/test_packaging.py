"""The dependency floors pyproject.toml declares are the versions .ci/min-versions installs.

.ci/min-versions runs a quick subset against exactly those versions; this keeps its list in
step with pyproject.toml, so a raised (or a new) floor is tested at its floor.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOOR = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)>=([0-9][0-9.]*)")


def _floors() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors = {}
    for requirement in project["dependencies"]:
        match = FLOOR.match(requirement.replace(" ", ""))
        assert match, f"{requirement!r} declares no floor (>=)"
        floors[match.group(1).lower()] = match.group(2)
    return floors


def _pinned() -> dict[str, str]:
    pins = {}
    for line in (ROOT / ".ci" / "min-versions.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.lower()] = version
    return pins


def _same(floor: str, pinned: str) -> bool:
    """6.0 == 6 == 6.0.0: compare as numbers, padded."""
    a, b = ([int(part) for part in v.split(".")] for v in (floor, pinned))
    width = max(len(a), len(b))
    return a + [0] * (width - len(a)) == b + [0] * (width - len(b))


def test_every_floor_but_torchs_is_installed_at_its_floor_by_the_min_versions_step() -> None:
    floors, pinned = _floors(), _pinned()
    floors.pop("torch")  # its CPU build for CI is on this disk only: the step reuses CI's
    assert sorted(floors) == sorted(pinned)
    assert {name: floors[name] for name in floors if not _same(floors[name], pinned[name])} == {}
