"""hpo.compare.agreement: a live comparison against its replay, arm by arm."""

from __future__ import annotations

import math

import pytest

from hpo.compare.agreement import agreement, overlap
from hpo.compare.agreement_report import agreement_headline, agreement_table, per_seed_table
from hpo.compare.runs import Finished, RunRow, study_rows
from hpo.compare.stats import Interval

SEEDS = 12


def arm_rows(
    arm: str, finals: list[float], *, seconds: float = 1.0, climb: int = 3
) -> list[RunRow]:
    """One study per final: `climb` trials rising to it, each costing `seconds` x (seed + 1)
    so that compute differs between seeds."""
    rows: list[RunRow] = []
    for seed, final in enumerate(finals):
        trials = [
            Finished(i, "COMPLETE", final * (i + 1) / climb, seconds * (seed + 1), float(i))
            for i in range(climb)
        ]
        rows += study_rows(arm, seed, trials, "maximize")
    return rows


def spread(centre: float) -> list[float]:
    return [centre + 0.01 * (k % 4) for k in range(SEEDS)]


def test_the_same_rows_agree_on_everything_and_the_target_is_the_live_baselines() -> None:
    rows = arm_rows("random", spread(0.8)) + arm_rows("tpe", spread(0.81))
    result = agreement(rows, rows, direction="maximize")
    assert result.baseline == "random"
    assert result.target == pytest.approx(0.815)  # median of 0.80, 0.81, 0.82, 0.83 x 3
    assert [a.arm for a in result.arms] == ["random", "tpe"]
    for arm in result.arms:
        assert arm.live == arm.replay
        assert arm.final_agrees and arm.compute_agrees and arm.fraction_agrees
    assert result.arms[0].live.studies == SEEDS
    assert result.arms[0].live.trials == 3 * SEEDS


def test_final_bests_far_apart_disagree() -> None:
    live = arm_rows("random", spread(0.9))
    replay = arm_rows("random", spread(0.5))
    (arm,) = agreement(live, replay, direction="maximize").arms
    assert arm.live.final.estimate == pytest.approx(0.915, abs=1e-9)
    assert arm.replay.final.estimate == pytest.approx(0.515, abs=1e-9)
    assert not arm.final_agrees


def test_a_slower_machine_disagrees_on_seconds_but_not_on_the_fraction_of_the_baseline() -> None:
    """Replayed seconds 10x the live ones, the same curves: compute to target differs by
    10x, the fraction of the baseline's compute (which cancels machine speed) does not."""
    live = arm_rows("random", spread(0.8)) + arm_rows("tpe", spread(0.9))
    replay = arm_rows("random", spread(0.8), seconds=10.0) + arm_rows(
        "tpe", spread(0.9), seconds=10.0
    )
    result = agreement(live, replay, direction="maximize")
    tpe = result.arms[1]
    assert tpe.replay.compute.median.estimate == pytest.approx(
        10 * tpe.live.compute.median.estimate
    )
    assert not tpe.compute_agrees
    assert tpe.fraction_agrees
    assert tpe.live.fraction.estimate == pytest.approx(tpe.replay.fraction.estimate)


def test_an_arm_that_never_reaches_the_live_target_counts_as_never() -> None:
    live = arm_rows("random", spread(0.8))
    replay = arm_rows("random", spread(0.3))
    (arm,) = agreement(live, replay, direction="maximize").arms
    assert arm.replay.compute.reached == 0
    assert math.isinf(arm.replay.compute.median.estimate)
    assert arm.live.compute.reached == SEEDS // 2  # 0.82 and 0.83: half the seeds


def test_pruned_trials_are_counted_and_never_improve_the_best() -> None:
    trials = [
        Finished(0, "COMPLETE", 0.5, 1.0, 1.0),
        Finished(1, "PRUNED", 0.9, 0.2, 2.0),
        Finished(2, "COMPLETE", 0.6, 1.0, 3.0),
    ]
    rows = study_rows("random", 0, trials, "maximize")
    (arm,) = agreement(rows, rows, direction="maximize").arms
    assert arm.live.pruned == 1
    assert arm.live.finals == (pytest.approx(0.6),)


def test_an_arm_missing_from_the_replay_is_an_error() -> None:
    live = arm_rows("random", spread(0.8)) + arm_rows("tpe", spread(0.8))
    with pytest.raises(ValueError, match="tpe"):
        agreement(live, arm_rows("random", spread(0.8)), direction="maximize")


def test_overlap() -> None:
    assert overlap(Interval(1, 0, 2), Interval(3, 2, 4))  # touching ends
    assert not overlap(Interval(1, 0, 1.9), Interval(3, 2, 4))
    assert overlap(Interval(5, 3, math.inf), Interval(9, 8, 10))  # "never" reaches up
    assert not overlap(Interval(math.nan, math.nan, math.nan), Interval(1, 0, 2))


def test_the_page_names_the_arms_that_disagree_and_marks_their_rows() -> None:
    live = arm_rows("random", spread(0.8)) + arm_rows("tpe", spread(0.9))
    replay = arm_rows("random", spread(0.8)) + arm_rows("tpe", spread(0.5))
    result = agreement(live, replay, direction="maximize")
    headline = agreement_headline(result)
    assert "median final best: tpe;" in headline
    table = agreement_table(result, "val_accuracy")
    assert table.count("**no**") >= 1
    assert "| random | median final best val_accuracy [95% CI] |" in table
    assert "| tpe | median final best val_accuracy [95% CI] |" in table
    assert table.count("\n") + 1 == 2 + 5 * 2  # header, rule, five rows per arm
    assert len(per_seed_table(result).splitlines()) == 2 + 2 * SEEDS
