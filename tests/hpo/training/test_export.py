"""`hpo export`: the kept model as a folder that loads anywhere, and one line for bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest

from hpo.config.settings import Settings
from hpo.service import launch_study
from tests.helpers import accuracy_in_fresh_process, run_hpo, with_password

PASSWORD = "export-secret-pw"
DIGITS = {"name": "digits", "seed": 0, "val_fraction": 0.2}  # write_tiny_study's split


def launched(url: str, artifacts: Path, study_file: Path, workers: int = 1) -> optuna.Study:
    launch_study(Settings(url, 10, str(artifacts), 30.0), str(study_file), workers=workers)
    name = study_file.stem
    return optuna.load_study(study_name=name, storage=url)


def env_of(url: str, artifacts: Path) -> dict[str, str]:
    return {"HPO_STORAGE": url, "HPO_ARTIFACTS": str(artifacts)}


@pytest.mark.parametrize("url_fixture", ["sqlite_url", "postgres_url"])
def test_export_loads_in_a_fresh_process_with_the_trials_test_accuracy(
    tmp_path: Path, write_study: Any, url_fixture: str, request: pytest.FixtureRequest
) -> None:
    url = with_password(request.getfixturevalue(url_fixture), password=PASSWORD)
    artifacts = tmp_path / "arts"
    study = launched(url, artifacts, write_study("digits-mlp", trials=3, dataset="digits"))
    out = tmp_path / "model"

    run = run_hpo("export", "digits-mlp", "--out", str(out), env=env_of(url, artifacts))

    assert run.returncode == 0, run.stderr
    best = study.best_trial
    assert f"trial {best.number} of digits-mlp" in run.stdout
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.pt", "trials.csv"]
    about = json.loads((out / "model.json").read_text())
    assert (about["trial"], about["study"], about["value"]) == (
        best.number,
        "digits-mlp",
        best.value,
    )
    assert about["model"] == "mlp" and about["in_shape"] == [1, 8, 8]
    assert about["class_names"] == [str(d) for d in range(10)]
    assert about["input"]["scale"] == 16.0 and about["metrics"]["test_accuracy"] > 0
    assert about["hpo_version"] and about["torch_version"]
    for path in out.iterdir():  # the storage's URL and password stay out of every file
        text = path.read_bytes()
        assert PASSWORD.encode() not in text and b"sqlite" not in text and b"postgres" not in text
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [int(r["number"]) for r in rows] == [0, 1, 2]
    assert {"state", "value", "duration_s", "param_lr", "attr_test_accuracy"} <= set(rows[0])
    # Raw pixels in, class indices out, in an interpreter that never saw the study.
    accuracy = accuracy_in_fresh_process(out, DIGITS)
    assert accuracy == pytest.approx(best.user_attrs["test_accuracy"], abs=1e-9)


def test_export_of_a_given_trial_as_json_lines_over_an_old_export(
    tmp_path: Path, write_study: Any, sqlite_url: str
) -> None:
    artifacts = tmp_path / "arts"
    study = launched(sqlite_url, artifacts, write_study("rings", trials=2, epochs=1))
    out = tmp_path / "model"
    out.mkdir()
    (out / "trials.csv").write_text("old")
    env = env_of(sqlite_url, artifacts)

    run = run_hpo(
        "export", "rings", "--out", str(out), "--trial", "1", "--format", "json", "--force", env=env
    )

    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.pt", "trials.jsonl"]
    lines = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert [row["number"] for row in lines] == [0, 1]
    assert json.loads((out / "model.json").read_text())["trial"] == 1
    assert lines[1]["value"] == study.trials[1].value


def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, write_study: Any, sqlite_url: str
) -> None:
    artifacts = tmp_path / "arts"
    env = env_of(sqlite_url, artifacts)
    study_file = write_study("done", trials=3, epochs=1)
    study_file.write_text(study_file.read_text().replace("[study]\n", "[study]\nkeep = 1\n", 1))
    study = launched(sqlite_url, artifacts, study_file)
    unkept = next(t.number for t in study.trials if t.number != study.best_trial.number)
    launched(sqlite_url, artifacts, write_study("empty", trials=2), workers=0)
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    out = str(tmp_path / "out")
    cases = {
        ("export", "nosuch", "--out", out): "no study named 'nosuch'",
        ("retrain", "nosuch", "--out", out): "no study named 'nosuch'",
        ("export", "empty", "--out", out): "study 'empty' has no completed trial yet",
        ("export", "empty", "--out", out, "--trial", "0"): "trial 0 of study 'empty' is waiting",
        ("export", "done", "--out", out, "--trial", "99"): "study 'done' has no trial 99",
        ("export", "done", "--out", out, "--trial", str(unkept)): (
            f"trial {unkept} of study 'done' has no kept weights"
        ),
        ("export", "done", "--out", str(full)): f"--out {full} is not empty; pass --force",
        ("retrain", "done", "--out", str(full)): f"--out {full} is not empty; pass --force",
    }
    for args, message in cases.items():
        run = run_hpo(*args, env=env)
        assert run.returncode == 2, (args, run.stdout, run.stderr)
        assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1, run.stderr
        assert message in run.stderr, run.stderr
        assert "Traceback" not in run.stderr
    assert "`hpo retrain done --trial" in run_hpo(*list(cases)[5], env=env).stderr
    assert not Path(out).exists()
    assert [p.name for p in full.iterdir()] == ["keep.txt"]


def test_import_hpo_loads_torch_only_when_load_model_is_used() -> None:
    probe = (
        "import sys, hpo\n"
        "assert 'torch' not in sys.modules\n"
        "assert callable(hpo.load_model) and 'torch' in sys.modules\n"
        "assert 'load_model' in hpo.__all__\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
