"""benchmarks/check_figures.py reads back what `_machine.figure` prints, and judges it."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import _machine  # noqa: E402
import check_figures  # noqa: E402


def printed(name: str, values: list[float], unit: str = "") -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        _machine.figure(name, values, unit)
    return out.getvalue()


def write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench.txt").write_text("== banner ==\nother output\n" + text)
    return folder


def test_a_printed_figure_reads_back_with_its_median_and_spread(tmp_path: Path) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        _machine.count("lost", 0)
    text = printed("hpo / plain, trials/s", [0.9, 1.1, 1.0], "x") + out.getvalue()
    figures = check_figures.read_figures(write(tmp_path, text))
    ratio = figures["bench: hpo / plain, trials/s"]
    assert (ratio.median, ratio.low, ratio.high, ratio.n, ratio.unit) == (1.0, 0.9, 1.1, 3, "x")
    assert figures["bench: lost"].is_count and figures["bench: lost"].median == 0


def test_a_figure_that_measured_nothing_is_printed_but_not_judged(tmp_path: Path) -> None:
    text = printed("never ran", [float("nan")])
    assert "none" in text
    assert check_figures.read_figures(write(tmp_path, text)) == {}


@pytest.mark.parametrize(
    ("committed", "new", "expected"),
    [
        ([0.9, 1.0, 1.1], [1.05, 1.1, 1.3], True),  # new median inside the committed spread
        ([0.9, 1.0, 1.1], [0.5, 0.95, 1.4], True),  # committed median inside the new spread
        ([0.9, 1.0, 1.1], [1.2, 1.3, 1.4], False),  # apart
        ([0.9, 1.0, 1.1], [0.5, 0.6, 0.7], False),
        ([2.0], [2.0], True),  # one round: a point, still a measurement
    ],
)
def test_matches(committed: list[float], new: list[float], expected: bool) -> None:
    def figure(values: list[float]) -> check_figures.Figure:
        ordered = sorted(values)
        return check_figures.Figure(ordered[len(ordered) // 2], ordered[0], ordered[-1],
                                    len(values))  # fmt: skip

    assert check_figures.matches(figure(committed), figure(new)) is expected


@pytest.mark.parametrize(("committed", "new", "expected"), [(3, 3, True), (3, 4, False)])
def test_counts_must_be_equal(committed: float, new: float, expected: bool) -> None:
    def count(value: float) -> check_figures.Figure:
        return check_figures.Figure(value, value, value, 0)

    assert check_figures.matches(count(committed), count(new)) is expected
    # a count never matches a measured figure of the same value
    assert not check_figures.matches(count(committed), check_figures.Figure(3, 2, 4, 3))


def test_the_script_fails_on_a_differing_or_missing_figure(tmp_path: Path) -> None:
    committed = write(tmp_path / "committed", printed("a", [1.0, 1.1]) + printed("b", [2.0, 2.2]))
    same = write(tmp_path / "same", printed("a", [1.05, 1.2]) + printed("b", [2.1, 2.3]))
    apart = write(tmp_path / "apart", printed("a", [5.0, 6.0]))
    script = ROOT / "benchmarks" / "check_figures.py"

    def run(new: Path) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, str(script), str(new), "--committed", str(committed)]
        return subprocess.run(command, capture_output=True, text=True)

    ok = run(same)
    assert ok.returncode == 0, ok.stdout
    assert "2 of 2 figures match" in ok.stdout
    bad = run(apart)
    assert bad.returncode == 1
    assert "DIFFERS  bench: a" in bad.stdout and "MISSING  bench: b" in bad.stdout


def test_benchmarks_md_quotes_exactly_the_committed_figures() -> None:
    """BENCHMARKS.md's table of figures is what the committed raw outputs say, to the digit."""
    text = (ROOT / "BENCHMARKS.md").read_text()
    start, end = "<!-- figures -->\n", "<!-- /figures -->"
    assert start in text and end in text, "BENCHMARKS.md has lost its figures block"
    quoted = text.split(start, 1)[1].split(end, 1)[0]
    results = ROOT / "benchmarks" / "results"
    expected = check_figures.table(
        check_figures.read_figures(results), check_figures.provenance(results)
    )
    assert quoted == expected, "rerun: python3 benchmarks/check_figures.py --table"
