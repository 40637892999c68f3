"""A user's own data end to end: real files in a temporary folder, real training (one
epoch, tiny), on SQLite and PostgreSQL; the data's identity stored with the study, and a
worker that finds other data under the same path refused."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.helpers import run_main
from tests.hpo.training.datakit import write_csv, write_kind

STORAGES = ["sqlite_url", pytest.param("postgres_url", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("kind", ["folder", "npz", "csv"])
def test_a_study_trains_on_own_data_and_names_its_classes(
    kind: str, storage: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue(storage)
    (tmp_path / "project").mkdir()
    study_file = write_kind(tmp_path / "project", kind)
    args = ["--storage", url, "--artifacts", str(tmp_path / "artifacts")]
    code, out, err = run_main(*args, "launch", "study", str(study_file), "--workers", "1")
    assert code == 0, out + err
    study = optuna.load_study(study_name=f"own-{kind}", storage=url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert all(0.0 <= t.value <= 1.0 for t in study.trials)
    stored = study.user_attrs["data"]
    assert stored["kind"] == kind and stored["examples"] == {"train": 22, "val": 7, "test": 7}
    assert stored["path"].startswith(str((tmp_path / "project").resolve()))
    names = ["kind_0", "kind_1", "kind_2"] if kind == "csv" else ["0", "1", "2"]
    if kind == "folder":
        names = ["one", "two", "zero"]
    assert stored["class_names"] == names
    code, out, err = run_main(*args, "export", f"own-{kind}", "--out", str(tmp_path / "model"))
    assert code == 0, out + err
    record = json.loads((tmp_path / "model" / "model.json").read_text())
    assert record["class_names"] == names and record["dataset"] == kind


def test_a_worker_that_finds_other_data_under_the_path_refuses(
    sqlite_url: str, tmp_path: Path
) -> None:
    study_file = write_kind(tmp_path, "csv")
    args = ["--storage", sqlite_url, "--artifacts", str(tmp_path / "artifacts")]
    assert run_main(*args, "launch", "study", str(study_file), "--workers", "0")[0] == 0
    rows = [["9", "9", "9", f"kind_{k}"] for k in range(3) for _ in range(12)]
    write_csv(tmp_path / "table.csv", rows)  # same path, other numbers
    code, _, err = run_main(*args, "worker", "--study", "own-csv")
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert "differ from the study's (hash differ" in line and "refuses to join" in line, err
    study = optuna.load_study(study_name="own-csv", storage=sqlite_url)
    assert all(t.state == TrialState.WAITING for t in study.trials)  # no trial was run
    code, _, err = run_main(*args, "launch", "study", str(study_file), "--workers", "0")
    assert code == 2 and "differ from the study's" in err  # a relaunch is refused too
