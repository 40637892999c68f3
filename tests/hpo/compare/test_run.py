"""hpo.compare.run: arms derived from a study file, the options' checks, progress rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo.compare.run import (
    ComparisonProgress,
    derive_arms,
    parse_samplers,
    plan_comparison,
    study_name,
)
from hpo.errors import HpoError
from hpo.spec import load_spec
from tests.hpo.compare.kit import TRIALS, write_tiny


def test_derive_arms_changes_only_sampler_and_seed(tmp_path: Path) -> None:
    spec = load_spec(write_tiny(tmp_path))
    arms = derive_arms(spec, ["random", "tpe"], 3)
    assert [(a.seed, a.sampler) for a in arms][:3] == [(0, "random"), (0, "tpe"), (1, "random")]
    for arm in arms:
        left, right = arm.spec.identity(), spec.identity()
        left.pop("sampler"), right.pop("sampler")
        assert left == right
    with pytest.raises(HpoError, match="--seeds"):
        derive_arms(spec, ["random"], 0)


def test_sampler_options_and_seeds_reach_the_right_arm(tmp_path: Path) -> None:
    spec = load_spec(write_tiny(tmp_path))
    arms = {(a.sampler, a.seed): a.spec for a in derive_arms(spec, ["random", "tpe"], 2)}
    assert arms[("tpe", 1)].sampler.options == {"n_startup_trials": 2}
    assert arms[("random", 1)].sampler.options == {}
    assert arms[("random", 1)].sampler.seed == spec.sampler.seed + 1
    assert arms[("tpe", 1)].name == study_name("tiny", "tpe", 1) == "tiny-tpe-s1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("random,bogus", "unknown sampler 'bogus'"),
        ("random,random", "repeats a name"),
        (" , ", "--samplers is empty"),
    ],
)
def test_parse_samplers_rejects_bad_lists(text: str, message: str) -> None:
    with pytest.raises(HpoError, match=message):
        parse_samplers(text)


def test_parse_samplers_strips_blanks() -> None:
    assert parse_samplers(" random, tpe ,") == ["random", "tpe"]


def test_plan_takes_the_trial_budget_from_the_option_or_the_file(tmp_path: Path) -> None:
    spec = load_spec(write_tiny(tmp_path))
    plan = plan_comparison(spec, "random,tpe", seeds=2, trials=None)
    assert (plan.group, plan.samplers, plan.seeds, plan.trials) == (
        "tiny",
        ["random", "tpe"],
        2,
        TRIALS,
    )
    assert len(plan.arms) == 4
    assert plan_comparison(spec, "tpe", seeds=1, trials=7).trials == 7
    with pytest.raises(HpoError, match="--trials must be >= 1, got 0"):
        plan_comparison(spec, "tpe", seeds=1, trials=0)


def test_progress_rows_sum_trials_and_pick_the_best_by_direction(tmp_path: Path) -> None:
    spec = load_spec(write_tiny(tmp_path))
    arms = derive_arms(spec, ["random", "tpe"], 2)
    progress = ComparisonProgress("maximize", {"random": 6, "tpe": 6})
    for arm, finished, best in zip(arms, (1, 2, 3, 0), (0.5, 0.7, 0.6, None), strict=True):
        progress.update(arm, finished, best)
    progress.update(arms[0], 2, 0.4)  # a later report of the same study replaces the first
    assert progress.rows() == [("random", 5, 6, 0.6), ("tpe", 2, 6, 0.7)]
    progress.direction = "minimize"
    assert progress.rows() == [("random", 5, 6, 0.4), ("tpe", 2, 6, 0.7)]
