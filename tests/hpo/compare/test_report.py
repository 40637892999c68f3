"""hpo.compare.report: where report files go, the compute headline and table cells (the
files themselves: test_service.py, test_arms.py)."""

from __future__ import annotations

from pathlib import Path

from hpo.compare.analyze import ComparisonStats, analyze
from hpo.compare.load import Comparison, StudyRun, TrialRecord
from hpo.compare.report import headline, headline_compute, report_folder, summary_rows
from hpo.report.shared import REPORTS_DIR

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


def _run(arm: str, seed: int, values: list[float | None], seconds: list[float]) -> StudyRun:
    trials = [
        TrialRecord(i, "COMPLETE" if v is not None else "PRUNED", v, 99.0, {}, {"train_seconds": s})
        for i, (v, s) in enumerate(zip(values, seconds, strict=True))
    ]
    return StudyRun(f"g-{arm}-s{seed}", seed, arm, arm.split("+")[0], None, seed, trials)


def _stats(runs: list[StudyRun]) -> ComparisonStats:
    return analyze(Comparison("g", "maximize", "val_accuracy", 2, {}, runs))


def test_the_headline_states_the_compute_fraction_and_its_interval() -> None:
    # random: finals 0.8, 0.9 -> target 0.85, reached by seed 1 after 10 + 10 s.
    # tpe+hyperband: both seeds reach 0.85 after 2 + 3 = 5 s -> 0.25x.
    stats = _stats(
        [
            _run("random", 0, [0.8, 0.7], [10.0, 10.0]),
            _run("random", 1, [0.5, 0.9], [10.0, 10.0]),
            _run("tpe+hyperband", 0, [None, 0.9], [2.0, 3.0]),
            _run("tpe+hyperband", 1, [None, 0.86], [2.0, 3.0]),
        ]
    )
    text = headline_compute(stats)
    assert text.startswith("Target: random's median final best (0.8500); random gets there in")
    assert "tpe+hyperband reaches random's median final best (0.8500) with 0.25x" in text
    # A quarter of random's resamples draw its unreached seed twice: random never gets
    # there, so no ratio exists: "base never", not 0.00x.
    assert (
        "(95% CI base never to 0.25x; median over seeds 5 s against 20 s per seed, "
        "2/2 seeds get there)" in text
    )
    assert "0.00x" not in text
    base, arm = summary_rows(stats)
    assert base[3:6] == ["20 s [20 s, never]", "baseline", "1/2"]
    assert arm[:6] == [
        "tpe+hyperband",
        "2",
        "4",
        "5 s [5 s, 5 s]",
        "0.25x [base never, 0.25x]",
        "2/2",
    ]


def test_the_headline_says_so_when_an_arm_does_not_reach_the_target() -> None:
    stats = _stats(
        [
            _run("random", 0, [0.9], [10.0]),
            _run("tpe", 0, [0.5], [1.0]),
        ]
    )
    text = headline_compute(stats)
    assert "tpe does not reach random's median final best (0.9000)" in text
    assert "budget: not reached (0 of 1 seeds), so it shows no compute saving" in text
    assert summary_rows(stats)[1][3:6] == [
        "not reached (0 of 1 seeds)",
        "not reached (0 of 1 seeds)",
        "0/1",
    ]


def test_an_arm_that_reaches_in_too_few_seeds_gets_no_ratio_and_no_interval() -> None:
    # random: finals 0.8, 0.9, 0.85 -> target 0.85, reached by 2 of 3 seeds.
    # tpe: 1 of 3 seeds gets there (after 1 s, cheaper than any of random's): fewer than
    # half, so its median is "never" and no ratio or interval is printed for it.
    stats = _stats(
        [
            _run("random", 0, [0.8], [10.0]),
            _run("random", 1, [0.9], [10.0]),
            _run("random", 2, [0.85], [10.0]),
            _run("tpe", 0, [0.95], [1.0]),
            _run("tpe", 1, [0.5], [1.0]),
            _run("tpe", 2, [0.6], [1.0]),
        ]
    )
    row = summary_rows(stats)[1]
    assert row[3:6] == ["not reached (1 of 3 seeds)", "not reached (1 of 3 seeds)", "1/3"]
    assert row[-1] == "- / -"  # no speedup either
    text = headline_compute(stats)
    assert "tpe does not reach random's median final best (0.8500)" in text
    assert "not reached (1 of 3 seeds)" in text
    tpe = text.split("tpe does not reach", 1)[1]
    assert "x" not in tpe.replace("no compute saving", "").replace("(0.8500)", "")
    assert "CI" not in tpe


def test_trials_to_target_is_worded_as_the_median_curve() -> None:
    stats = _stats(
        [
            _run("random", 0, [0.8, 0.7], [10.0, 10.0]),
            _run("random", 1, [0.5, 0.9], [10.0, 10.0]),
            _run("tpe", 0, [0.9, 0.9], [2.0, 3.0]),
            _run("tpe", 1, [0.5, 0.6], [2.0, 3.0]),
        ]
    )
    text = headline(stats)
    # random's median curve: (0.65, 0.85) reaches 0.85 at trial 2; tpe's: (0.7, 0.75) never.
    assert "The median curve of tpe does not reach the target within the budget" in text
    assert "(1 of 2 seeds' own curves do)" in text
    assert "typical" not in text
    assert "median over seeds" in text  # compute: per-seed seconds, then their median
