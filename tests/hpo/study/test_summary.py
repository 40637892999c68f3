"""Summaries: one study whose records are unreadable never hides the others."""

from __future__ import annotations

import optuna
import sqlalchemy

from hpo.config.spec import load_spec
from hpo.storage import _optuna
from hpo.storage.open import open_storage
from hpo.study.create import open_study
from hpo.study.records import BUDGET_ATTR, SPEC_ATTR
from hpo.study.summary import CORRUPT_SPEC, summarize, summarize_storage


def _break_attrs_json(storage: optuna.storages.RDBStorage, study: optuna.Study) -> None:
    """Make the stored text of the study's spec invalid JSON (Optuna only writes JSON)."""
    with storage.engine.begin() as connection:
        connection.execute(
            sqlalchemy.text(
                "UPDATE study_user_attributes SET value_json = '{' WHERE study_id = :s AND key = :k"
            ),
            {"s": _optuna.study_id(study), "k": SPEC_ATTR},
        )


def test_summarize_storage_survives_corrupt_and_foreign_studies(sqlite_url, write_study) -> None:
    storage = open_storage(sqlite_url)
    open_study(storage, load_spec(write_study("good", trials=3)))
    for name, spec in [("a-string", "cnn"), ("a-list", [1]), ("null", None), ("no-model", {})]:
        optuna.create_study(study_name=name, storage=storage).set_user_attr(SPEC_ATTR, spec)
    broken = optuna.create_study(study_name="not-json", storage=storage)
    broken.set_user_attr(SPEC_ATTR, {"model": "mlp"})
    broken.set_user_attr(BUDGET_ATTR, "many")
    _break_attrs_json(storage, broken)
    optuna.create_study(study_name="plain-optuna", storage=storage)
    optuna.create_study(study_name="two-objectives", storage=storage, directions=["minimize"] * 2)

    summaries = {s.name: s for s in summarize_storage(storage)}

    assert sorted(summaries) == [
        "a-list",
        "a-string",
        "good",
        "no-model",
        "not-json",
        "null",
        "plain-optuna",
        "two-objectives",
    ]
    good = summaries["good"]
    assert (good.model, good.budget, good.states["WAITING"]) == ("mlp", 3, 3)
    for name in ("a-string", "a-list", "null", "no-model", "not-json"):
        assert summaries[name].model == CORRUPT_SPEC
        assert summaries[name].budget is None
    assert summaries["plain-optuna"].model is None  # not created by hpo: nothing is wrong
    assert summaries["two-objectives"].direction == "minimize/minimize"
    assert summaries["two-objectives"].best is None


def test_study_names_read_past_an_attribute_that_is_not_json(sqlite_url) -> None:
    storage = open_storage(sqlite_url)
    study = optuna.create_study(study_name="b", storage=storage)
    study.set_user_attr(SPEC_ATTR, {})
    optuna.create_study(study_name="a", storage=storage)
    _break_attrs_json(storage, study)
    assert _optuna.study_names(storage) == ["a", "b"]
    assert summarize(optuna.load_study(study_name="b", storage=storage)).model == CORRUPT_SPEC
