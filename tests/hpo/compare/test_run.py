"""hpo.compare.run: arms derived from a study file, the options' checks, progress rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo.compare.run import (
    ComparisonProgress,
    derive_arms,
    parse_arms,
    plan_comparison,
    study_name,
)
from hpo.config.paths import safe_folder_name
from hpo.config.spec import load_spec
from hpo.errors import HpoError
from tests.conftest import write_tiny_study
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
        parse_arms(text, "--samplers")


def test_parse_samplers_strips_blanks() -> None:
    assert [a.label for a in parse_arms(" random, tpe ,")] == ["random", "tpe"]


def test_plan_takes_the_trial_budget_from_the_option_or_the_file(tmp_path: Path) -> None:
    spec = load_spec(write_tiny(tmp_path))
    plan = plan_comparison(spec, "random,tpe", seeds=2, trials=None)
    assert (plan.group, plan.labels, plan.seeds, plan.trials) == (
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


def test_parse_arms_reads_sampler_and_pruner() -> None:
    arms = parse_arms("random, tpe + hyperband,gp+none,qmc")
    assert [(a.label, a.sampler, a.pruner) for a in arms] == [
        ("random", "random", None),
        ("tpe+hyperband", "tpe", "hyperband"),
        ("gp+none", "gp", "none"),
        ("qmc", "qmc", None),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("random,bogus+median", r"unknown sampler 'bogus' in --arms arm 'bogus\+median'.*gp"),
        ("random,tpe+bogus", r"unknown pruner 'bogus' in --arms arm 'tpe\+bogus'.*hyperband"),
        ("random,tpe+", r"unknown pruner '' in --arms arm 'tpe\+'"),
        ("tpe+median,random,tpe+median", "--arms repeats a name"),
        ("tpe + median,tpe+median", "--arms repeats a name"),
    ],
)
def test_parse_arms_rejects_unknown_names_and_repeats(text: str, message: str) -> None:
    with pytest.raises(HpoError, match=message) as error:
        parse_arms(text)
    assert "\n" not in str(error.value)


def test_a_pruner_arm_changes_only_sampler_seed_and_pruner(tmp_path: Path) -> None:
    spec = load_spec(write_tiny(tmp_path))  # pruner none
    arms = derive_arms(spec, parse_arms("random,random+hyperband,tpe+median"), 2)
    by = {(a.label, a.seed): a for a in arms}
    hyper = by[("random+hyperband", 1)]
    assert (hyper.sampler, hyper.pruner) == ("random", "hyperband")
    assert hyper.spec.name == "tiny-random+hyperband-s1"
    assert hyper.spec.pruner.name == "hyperband" and dict(hyper.spec.pruner.options) == {}
    assert hyper.spec.sampler.seed == spec.sampler.seed + 1
    assert by[("random", 0)].pruner == "none"  # no +PRUNER: the study file's pruner
    assert by[("random", 0)].spec.pruner == spec.pruner
    assert by[("tpe+median", 0)].spec.sampler.options == {"n_startup_trials": 2}
    for arm in arms:
        left, right = arm.spec.identity(), spec.identity()
        for key in ("sampler", "pruner"):
            left.pop(key), right.pop(key)
        assert left == right
        folder = safe_folder_name(arm.spec.name)  # checkpoints and reports use this
        assert "/" not in folder and "+" not in folder and not folder.startswith(".")


def test_pruner_options_of_the_file_reach_only_that_pruner(tmp_path: Path) -> None:
    path = write_tiny_study(tmp_path, "opts", pruner="median")
    path.write_text(
        path.read_text().replace(
            'name = "median"', 'name = "median"\noptions = { n_startup_trials = 1 }', 1
        )
    )
    spec = load_spec(path)
    assert dict(spec.pruner.options) == {"n_startup_trials": 1}
    arms = {a.label: a for a in derive_arms(spec, parse_arms("random,random+hyperband"), 1)}
    assert dict(arms["random"].spec.pruner.options) == {"n_startup_trials": 1}
    assert dict(arms["random+hyperband"].spec.pruner.options) == {}


def test_two_arms_that_resolve_to_the_same_study_are_refused(tmp_path: Path) -> None:
    spec = load_spec(write_tiny(tmp_path))  # pruner none: `tpe` is `tpe+none`
    with pytest.raises(HpoError, match=r"arms 'tpe' and 'tpe\+none' are the same"):
        derive_arms(spec, parse_arms("tpe,tpe+none"), 1)
