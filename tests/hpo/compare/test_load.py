"""hpo.compare.load: a comparison read back from a real SQLite storage, trial by trial."""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from hpo.compare.load import (
    GROUP_ATTR,
    SAMPLER_ATTR,
    SEED_ATTR,
    list_groups,
    load_comparison,
)
from hpo.errors import HpoError
from hpo.storage._optuna import study_id
from hpo.storage.open import open_storage
from hpo.study.records import BUDGET_ATTR, SPEC_ATTR

START = datetime.datetime(2024, 1, 1, 12, 0, 0)
LR = FloatDistribution(1e-3, 1e-1, log=True)


def frozen(
    number: int,
    state: TrialState,
    value: float | None = None,
    *,
    seconds: float = 1.0,
    user_attrs: dict | None = None,
    system_attrs: dict | None = None,
) -> FrozenTrial:
    return FrozenTrial(
        number=number,
        state=state,
        value=value,
        datetime_start=START,
        datetime_complete=START + datetime.timedelta(seconds=seconds),
        params={"lr": 0.01 * (number + 1)},
        distributions={"lr": LR},
        user_attrs=user_attrs or {},
        system_attrs=system_attrs or {},
        intermediate_values={},
        trial_id=number,
    )


def add_study(
    storage: optuna.storages.BaseStorage,
    group: str,
    sampler: str,
    seed: int,
    trials: list[FrozenTrial],
) -> optuna.Study:
    study = optuna.create_study(
        storage=storage, study_name=f"{group}-{sampler}-s{seed}", direction="maximize"
    )
    for key, value in (
        (GROUP_ATTR, group),
        (SAMPLER_ATTR, sampler),
        (SEED_ATTR, seed),
        (BUDGET_ATTR, 4),
        (SPEC_ATTR, {"metric": "val_accuracy", "model": "mlp"}),
    ):
        study.set_user_attr(key, value)
    for trial in trials:
        study.add_trial(trial)
    return study


@pytest.fixture
def storage(tmp_path: Path) -> optuna.storages.RDBStorage:
    storage = open_storage(f"sqlite:///{tmp_path / 'hpo.db'}")
    # Created out of order: tpe first, so tpe is the first sampler; seeds sort within it.
    add_study(
        storage,
        "pair",
        "tpe",
        1,
        [
            frozen(0, TrialState.FAIL, user_attrs={"fail_reason": "diverged"}),
            # The retry of trial 0: trial 0 no longer counts.
            frozen(1, TrialState.COMPLETE, 0.8, seconds=2.5, system_attrs={"retry_history": [0]}),
            frozen(2, TrialState.COMPLETE, math.inf),  # not a usable value
        ],
    )
    add_study(
        storage,
        "pair",
        "random",
        0,
        [
            frozen(0, TrialState.COMPLETE, 0.6, user_attrs={"diag_init_act_std": [1.0, 2.0]}),
            frozen(1, TrialState.PRUNED, 0.3),  # stopped early: its last value is no result
        ],
    )
    tpe0 = add_study(storage, "pair", "tpe", 0, [frozen(0, TrialState.COMPLETE, 0.9)])
    tpe0.enqueue_trial({"lr": 0.05})  # waiting: not finished, not read back
    add_study(storage, "other", "random", 0, [])
    optuna.create_study(storage=storage, study_name="plain")  # not part of any comparison
    return storage


def test_list_groups_names_each_comparison_once(storage: optuna.storages.RDBStorage) -> None:
    assert list_groups(storage) == ["other", "pair"]


def test_load_comparison_reads_runs_in_sampler_then_seed_order(
    storage: optuna.storages.RDBStorage,
) -> None:
    c = load_comparison(storage, "pair")
    assert (c.group, c.direction, c.metric, c.budget) == ("pair", "maximize", "val_accuracy", 4)
    assert c.spec == {"metric": "val_accuracy", "model": "mlp"}
    assert c.samplers == ["tpe", "random"]
    assert [(r.sampler, r.seed) for r in c.runs] == [("tpe", 0), ("tpe", 1), ("random", 0)]
    assert [r.name for r in c.runs_of("tpe")] == ["pair-tpe-s0", "pair-tpe-s1"]
    for run in c.runs:
        study = optuna.load_study(study_name=run.name, storage=storage)
        assert run.study_id == study_id(study)


def test_load_comparison_keeps_finished_counted_trials_as_plain_records(
    storage: optuna.storages.RDBStorage,
) -> None:
    runs = {r.name: r for r in load_comparison(storage, "pair").runs}
    tpe1 = runs["pair-tpe-s1"].trials
    # The superseded failure is gone; an infinite value is no value.
    assert [(t.number, t.state, t.value) for t in tpe1] == [
        (1, "COMPLETE", 0.8),
        (2, "COMPLETE", None),
    ]
    assert tpe1[0].seconds == 2.5
    assert tpe1[0].params == {"lr": pytest.approx(0.02)}
    random0 = runs["pair-random-s0"].trials
    assert [(t.number, t.state, t.value) for t in random0] == [
        (0, "COMPLETE", 0.6),
        (1, "PRUNED", None),
    ]
    assert random0[0].attrs == {"diag_init_act_std": [1.0, 2.0]}
    assert [t.number for t in runs["pair-tpe-s0"].trials] == [0]  # the waiting one is left out


def test_an_unknown_group_is_one_line_naming_the_known_ones(
    storage: optuna.storages.RDBStorage,
) -> None:
    with pytest.raises(HpoError, match=r"no comparison named 'nope' .*other, pair") as error:
        load_comparison(storage, "nope")
    assert "\n" not in str(error.value)
