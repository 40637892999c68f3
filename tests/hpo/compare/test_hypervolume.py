"""A multi-objective comparison judged by hypervolume: the measure, its reference point,
and the single-objective statistics run on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna._hypervolume import compute_hypervolume

from hpo.compare.analyze import analyze
from hpo.compare.hypervolume import hypervolume, hypervolume_curve, nondominated, scale_of
from hpo.compare.load import (
    ARM_ATTR,
    GROUP_ATTR,
    SAMPLER_ATTR,
    SEED_ATTR,
    importances_by_arm,
    load_comparison,
)
from hpo.compare.pareto import arm_points, front_of
from hpo.compare.publish import study_note
from hpo.compare.report import markdown_summary, write_report
from hpo.study.records import BUDGET_ATTR, SPEC_ATTR


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("count", [1, 4, 25])
def test_hypervolume_matches_optunas(dims: int, count: int) -> None:
    points = np.random.default_rng(dims * 100 + count).random((count, dims))
    expected = compute_hypervolume(points, np.full(dims, 1.1))
    assert hypervolume(points) == pytest.approx(expected, rel=1e-9)


def test_known_volumes_and_the_curve() -> None:
    assert hypervolume(np.array([[0.0, 0.0]])) == pytest.approx(1.21)
    assert hypervolume(np.array([[2.0, 0.0]])) == 0.0  # beyond the reference: nothing
    assert hypervolume(np.empty((0, 2))) == 0.0
    front = nondominated(np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]))
    assert sorted(map(tuple, front)) == [(0.0, 1.0), (1.0, 0.0)]
    # accuracy up, params down; scaled between the best (0.9, 10) and the worst (0.5, 110)
    scale = scale_of(["val_accuracy", "params"], [True, False], [[0.9, 110], [0.5, 10]])
    assert scale.best == (0.9, 10) and scale.worst == (0.5, 110)
    curve = hypervolume_curve([[0.5, 110], None, [0.9, 110], [0.5, 10]], scale)
    assert curve[0] == pytest.approx(0.1 * 0.1)  # the worst corner: a tenth squared
    assert curve[1] == curve[0]  # a failed or infeasible trial adds nothing
    assert curve[2] == pytest.approx(1.1 * 0.1)
    assert curve[3] == pytest.approx(1.1 * 0.1 + 0.1 * 1.0)
    assert scale.describe() == (
        "val_accuracy 0.46 (best 0.9, worst 0.5); params 120 (best 10, worst 110)"
    )


def _study(storage: str, arm: str, seed: int, rows: list[tuple[float, float, float]]) -> None:
    study = optuna.create_study(
        study_name=f"g-{arm}-s{seed}", storage=storage, directions=["maximize", "minimize"]
    )
    spec = {"metrics": ["val_accuracy", "params"], "model": "mlp", "space": {}}
    for key, value in (
        (GROUP_ATTR, "g"),
        (SAMPLER_ATTR, arm),
        (ARM_ATTR, arm),
        (SEED_ATTR, seed),
        (BUDGET_ATTR, len(rows)),
        (SPEC_ATTR, spec),
    ):
        study.set_user_attr(key, value)
    for accuracy, params, constraint in rows:
        study.add_trial(
            optuna.trial.create_trial(
                values=[accuracy, params],
                params={"width": params},
                distributions={"width": optuna.distributions.FloatDistribution(1, 1000)},
                user_attrs={"train_seconds": 1.0},
                system_attrs={"constraints": [constraint]},
            )
        )


def test_a_comparison_of_multi_objective_studies_is_one_of_hypervolume(
    sqlite_url: str, tmp_path: Path
) -> None:
    # the good arm finds small accurate networks; its infeasible trial would dominate all
    good = [(0.6, 50, -1), (0.99, 1, 5), (0.9, 20, -1)]
    poor = [(0.5, 100, -1), (0.6, 90, -1), (0.55, 80, -1)]
    for seed in range(3):
        _study(sqlite_url, "random", seed, poor)
        _study(sqlite_url, "tpe", seed, good)
    storage = optuna.storages.RDBStorage(sqlite_url)
    comparison = load_comparison(storage, "g")
    assert (comparison.metric, comparison.direction) == ("hypervolume", "maximize")
    assert "val_accuracy" in comparison.reference and "params" in comparison.reference
    tpe = comparison.runs_of("tpe")[0]
    volumes = [t.value for t in tpe.trials]
    assert volumes[0] > 0 and volumes[1] == volumes[0] < volumes[2]  # infeasible: nothing
    # (0.9, 20) holds the best feasible value of both metrics: the whole box, 1.1 squared
    assert volumes[2] == pytest.approx(1.21)
    stats = analyze(comparison, importances_by_arm(storage, comparison))
    assert stats.baseline == "random"
    assert stats.of("tpe").final.estimate > stats.of("random").final.estimate
    markdown = markdown_summary(stats, [])
    assert "reference point 1.1" in markdown and "a trade-off has no one value" in markdown
    fronts = {
        arm: front_of(arm_points(stats, arm), (True, False)).tolist() for arm in ("tpe", "random")
    }
    assert fronts == {"tpe": [[0.9, 20.0]], "random": [[0.55, 80.0], [0.6, 90.0]]}
    tpe_note = study_note(comparison, tpe, tpe)
    # trial 0 (0.6, 50) is dominated by trial 2 (0.9, 20); trial 1 is infeasible
    assert "feasible Pareto front (val_accuracy vs params): trials 2." in tpe_note
    built = write_report(stats, tmp_path / "report")
    assert (tmp_path / "report" / "pareto_front.png") in built.pngs
