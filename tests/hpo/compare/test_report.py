"""hpo.compare.report: where report files go (the files themselves: test_service.py)."""

from __future__ import annotations

from pathlib import Path

from hpo.compare.report import REPORTS_DIR, report_folder

HOSTILE = ["/tmp/x/Y", "../../Y", "a/b", "a b", "a_b", "比較実験", "比較", "x" * 300]


def test_a_group_name_never_leaves_the_reports_folder(tmp_path: Path) -> None:
    folders = [report_folder(name) for name in HOSTILE]
    assert len(set(folders)) == len(HOSTILE)
    for folder in folders:
        assert folder.parent == REPORTS_DIR == Path("reports")
        resolved = (tmp_path / folder).resolve()
        assert resolved.is_relative_to((tmp_path / "reports").resolve())
        assert len(folder.name) <= 51


def test_out_is_taken_as_given() -> None:
    assert report_folder("../../Y", "somewhere/else") == Path("somewhere/else")
