"""Study names are free text, bounded in the spec (paths derived from them: test_paths)."""

from __future__ import annotations

import pytest

from hpo.config.rules import MAX_NAME_LENGTH
from hpo.config.spec import load_spec
from hpo.errors import SpecError
from tests.helpers import run_hpo


def test_study_name_length_is_bounded(write_study) -> None:
    assert len(load_spec(write_study("n" * MAX_NAME_LENGTH)).name) == MAX_NAME_LENGTH
    with pytest.raises(
        SpecError, match=rf"study\.name: is 129 characters; at most {MAX_NAME_LENGTH}"
    ):
        load_spec(write_study("n" * 129))


def test_a_300_character_name_is_one_line_at_launch(write_study, sqlite_url, tmp_path) -> None:
    path = write_study("short")  # the file is named after the study: rename inside only
    path.write_text(path.read_text().replace('name = "short"', f'name = "{"n" * 300}"'))
    run = run_hpo(
        "--storage", sqlite_url, "launch", "study", str(path), "--workers", "0", cwd=tmp_path
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert "study.name: is 300 characters" in run.stderr


def test_a_name_given_with_dash_dash_name_is_bounded_too(write_study, sqlite_url, tmp_path):
    path = write_study("short")
    args = ("--storage", sqlite_url, "launch", "study", str(path), "--workers", "0", "--name")
    run = run_hpo(*args, "n" * 300, cwd=tmp_path)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.strip().splitlines() == [
        f"error: --name: study.name: is 300 characters; at most {MAX_NAME_LENGTH}"
    ]
    assert run_hpo(*args, "renamed", cwd=tmp_path).returncode == 0
