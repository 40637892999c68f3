"""docs/results/: every folder holds the data its report was built from and a `rebuild`
script that regenerates its README.md and summary.md from that data alone, byte for byte.
Each rebuild runs in a temporary copy of docs/results (no training: the studies are there)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[3] / "docs" / "results"
FOLDERS = sorted(p.parent for p in RESULTS.rglob("rebuild"))
REBUILT = ("README.md", "summary.md")

pytestmark = pytest.mark.slow  # each rebuild renders the figures again: ~10-30 s


def test_every_results_folder_has_its_data_and_a_rebuild() -> None:
    folders = sorted(p.parent for p in RESULTS.rglob("README.md"))
    assert folders == FOLDERS
    for folder in folders:
        if (folder / "studies.db").exists():  # a live comparison: the studies it ran in
            assert (folder / "studies.db").stat().st_size > 0, folder
        else:  # a replayed one: the recorded table and the replays' rows
            assert (folder / "table.db").stat().st_size > 0, folder
            assert list(folder.glob("*/runs.csv")), folder


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: str(p.relative_to(RESULTS)) or ".")
def test_rebuild_reproduces_the_committed_files(folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / "results"
    shutil.copytree(RESULTS, copy)
    here = copy / folder.relative_to(RESULTS)
    for name in REBUILT:
        (here / name).unlink()  # so that a rebuild that writes nothing cannot pass
    env = {**os.environ, "MPLBACKEND": "Agg"}
    done = subprocess.run(
        ["bash", str(here / "rebuild")], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    for name in REBUILT:
        assert (here / name).read_text() == (folder / name).read_text(), name
