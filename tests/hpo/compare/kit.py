"""Study files shared by the comparison tests."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import write_tiny_study

TRIALS = 3  # per study in the end-to-end comparison


def write_tiny(root: Path, name: str = "tiny") -> Path:
    """A tiny TPE study file whose sampler options only TPE accepts."""
    path = write_tiny_study(root, name, trials=TRIALS, epochs=2, sampler="tpe")
    # TPE's own option: it must reach the TPE arm only (random does not accept it).
    text = path.read_text().replace(
        "seed = 0\n", "seed = 0\noptions = { n_startup_trials = 2 }\n", 1
    )
    path.write_text(text)
    return path
