"""The artifact folder is checked before a command writes anything: one line, exit 2, and
nothing in the storage, whatever is wrong with the folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hpo.errors import HpoError
from hpo.runtime.artifacts import MIN_FREE_MB, check_artifacts
from tests.helpers import assert_usage_error, mounted, run_hpo

NOT_CREATABLE = Path("/proc/hpo-artifacts")  # procfs refuses mkdir, even to root


def test_a_missing_folder_is_created_and_the_write_check_leaves_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    assert check_artifacts(folder) == folder
    assert folder.is_dir() and list(folder.iterdir()) == []


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "file" / "x", "cannot be a folder: {root}/file is a file"),
        (lambda root: root / "file", "cannot be a folder: {root}/file is a file"),
    ],
    ids=["under a file", "a file"],
)
def test_a_file_in_the_way_is_named(tmp_path: Path, make, message: str) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(HpoError, match=message.format(root=tmp_path)):
        check_artifacts(make(tmp_path))


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_folder_that_cannot_be_created_is_refused() -> None:
    with pytest.raises(HpoError, match="cannot be created or written"):
        check_artifacts(NOT_CREATABLE)


def test_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    """As root, 0555 stops nothing (root writes through it, and so would hpo's workers):
    a read-only bind mount stops root too. Not root, the mode bits do."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        with pytest.raises(HpoError, match=r"cannot be created or written \(Permission denied"):
            check_artifacts(folder)
        return
    read_only = pytest.raises(HpoError, match=r"cannot be created or written \(Read-only")
    with mounted(folder, "--bind", "-o", "ro", str(folder)), read_only:
        check_artifacts(folder)


def test_too_little_free_space_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HpoError, match=f"hpo needs at least {10**9} MB"):
        check_artifacts(tmp_path, min_free_mb=10**9)


def test_a_one_megabyte_file_system_is_refused(tmp_path: Path) -> None:
    refused = pytest.raises(HpoError, match=f"only 1 MB free, hpo needs at least {MIN_FREE_MB} MB")
    with mounted(tmp_path / "tiny", "-t", "tmpfs", "-o", "size=1m", "tmpfs") as folder, refused:
        check_artifacts(folder)


# ------------------------------------------------------------------ at the command line


def _commands(study_file: Path) -> dict[str, list[str]]:
    """The commands that write artifacts, as a user runs them."""
    return {
        "launch study": ["launch", "study", str(study_file)],
        "worker": ["worker", "--study", "tiny", "--gpus", "none"],
        "compare": ["compare", str(study_file), "--seeds", "1"],
        "claims": ["claims", "--seeds", "1"],
    }


@pytest.mark.parametrize("command", ["launch study", "worker", "compare", "claims"])
def test_each_writing_command_refuses_an_artifact_folder_under_a_file(
    tmp_path: Path, write_study, command: str
) -> None:
    args = _commands(write_study("tiny", trials=1, epochs=1))[command]
    database = tmp_path / "hpo.db"
    env = {"HPO_STORAGE": f"sqlite:///{database}", "HPO_ARTIFACTS": "/etc/passwd/x"}
    result = run_hpo(*args, env=env, cwd=tmp_path)
    assert_usage_error(result, "artifact folder /etc/passwd/x cannot be a folder: /etc/passwd")
    assert "Traceback" not in result.stderr
    assert not database.exists()  # nothing in the storage: not even an empty file


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_launch_refuses_a_folder_that_cannot_be_created(tmp_path: Path, write_study) -> None:
    database = tmp_path / "hpo.db"
    args = ["launch", "study", str(write_study("tiny")), "--artifacts", str(NOT_CREATABLE)]
    result = run_hpo(*args, env={"HPO_STORAGE": f"sqlite:///{database}"}, cwd=tmp_path)
    assert_usage_error(result, f"artifact folder {NOT_CREATABLE} cannot be created or written")
    assert not database.exists()


def test_a_create_only_launch_needs_no_artifact_folder(tmp_path: Path, write_study) -> None:
    """`--workers 0` (docker compose's launch service) writes no artifacts: workers
    elsewhere check their own folder."""
    database = tmp_path / "hpo.db"
    args = ["launch", "study", str(write_study("tiny")), "--workers", "0"]
    env = {"HPO_STORAGE": f"sqlite:///{database}", "HPO_ARTIFACTS": "/etc/passwd/x"}
    result = run_hpo(*args, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert database.exists()
