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


def write(folder: Path, text: str, machine: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench.txt").write_text("== banner ==\nother output\n" + text)
    if machine:
        (folder / "run.txt").write_text(f"commit: abc\nmachine: {machine}\n")
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
    assert "2 of 2 judged figures match" in ok.stdout
    bad = run(apart)
    assert bad.returncode == 1
    assert "DIFFERS  bench: a" in bad.stdout and "MISSING  bench: b" in bad.stdout


def test_benchmarks_md_quotes_exactly_the_committed_figures() -> None:
    """BENCHMARKS.md's table of figures is what the committed raw outputs say, to the digit."""
    text = (ROOT / "BENCHMARKS.md").read_text()
    start, end = "<!-- figures -->\n", "<!-- /figures -->"
    assert start in text and end in text, "BENCHMARKS.md has lost its figures block"
    quoted = text.split(start, 1)[1].split(end, 1)[0]
    runs = check_figures.committed_runs(ROOT / "benchmarks" / "results")
    assert len(runs) >= 2, "the committed figures pool several whole runs"
    expected = check_figures.table(check_figures.pooled(runs), check_figures.provenance(runs))
    assert quoted == expected, "rerun: python3 benchmarks/check_figures.py --table"


def test_committed_runs_pool_into_the_middle_median_and_the_whole_spread(tmp_path: Path) -> None:
    for number, values in ((1, [1.0, 1.2]), (2, [0.8, 0.9]), (10, [1.5, 1.7])):
        text = printed("ratio", values, "x") + printed("same", [2.0])
        write(tmp_path / f"run-{number}", text, machine="2 cores, CPU A, GPU: none")
    runs = check_figures.committed_runs(tmp_path)
    assert [run.folder.name for run in runs] == ["run-1", "run-2", "run-10"]
    figure = check_figures.pooled(runs)["bench: ratio"]
    assert (figure.median, figure.low, figure.high, figure.n, figure.runs) == (
        1.1, 0.8, 1.7, 6, 3)  # fmt: skip
    # a run-to-run spread, wider than any one run's: a new run at 1.6 matches
    assert check_figures.matches(figure, check_figures.Figure(1.6, 1.55, 1.65, 2))
    assert "0.8-1.7 (6, 3)" in check_figures.table(check_figures.pooled(runs))


def test_a_count_that_changed_between_committed_runs_matches_no_new_count(tmp_path: Path) -> None:
    for number, lost in ((1, 0), (2, 1)):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            _machine.count("lost", lost)
        write(tmp_path / f"run-{number}", out.getvalue())
    figure = check_figures.pooled(check_figures.committed_runs(tmp_path))["bench: lost"]
    assert not figure.is_count
    for lost in (0, 1):
        assert not check_figures.matches(figure, check_figures.Figure(lost, lost, lost, 0))


def test_times_are_judged_only_on_the_committed_runs_machine(tmp_path: Path) -> None:
    committed = tmp_path / "results"
    text = printed("latency", [1.0, 1.1], "s") + printed("ratio", [1.0, 1.1], "x")
    write(committed / "run-1", text, machine="2 cores, CPU A, GPU: none")
    slower = printed("latency", [3.0, 3.3], "s") + printed("ratio", [1.05, 1.1], "x")
    other = write(tmp_path / "other", slower, machine="2 cores, CPU B, GPU: none")
    same = write(tmp_path / "same", slower, machine="2 cores, CPU A, GPU: none")
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert check_figures.check(committed, other) == 0
    assert "machine  bench: latency" in out.getvalue()
    assert "1 of 1 judged figures match" in out.getvalue()
    assert "1 times not judged" in out.getvalue()
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert check_figures.check(committed, same) == 1
    assert "DIFFERS  bench: latency" in out.getvalue()


def test_runs_of_another_machine_may_not_join_the_committed_ones(tmp_path: Path) -> None:
    write(tmp_path / "run-1", printed("a", [1.0]), machine="2 cores, CPU A, GPU: none")
    assert check_figures.can_add(tmp_path, "2 cores, CPU A, GPU: none") == 0
    assert check_figures.can_add(tmp_path, "2 cores, CPU B, GPU: none") == 2
    assert check_figures.can_add(tmp_path / "empty", "2 cores, CPU B, GPU: none") == 0
    write(tmp_path / "run-2", printed("a", [1.0]), machine="2 cores, CPU B, GPU: none")
    with pytest.raises(SystemExit, match="different machines"):
        check_figures.one_machine(check_figures.committed_runs(tmp_path))
