"""[model] entry: an own network in a study file, validated without torch."""

from __future__ import annotations

from typing import Any

import pytest

from hpo.config.space import TRAINING_KEYS, FloatParam, IntParam
from hpo.config.spec import OWN_MODEL, parse_spec, spec_from_dict
from hpo.errors import SpecError


def _raw(model: dict[str, Any], space: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"study": {"name": "own"}, "model": model, "space": space or {"lr": 0.01}}


def test_the_training_keys_are_the_issues_list() -> None:
    expected = "lr optimizer weight_decay momentum batch_size schedule warmup_epochs augment l1"
    assert set(expected.split()) | {"patience"} == TRAINING_KEYS


def test_an_entry_makes_an_own_network_whose_keys_are_its_own() -> None:
    space = {
        "blocks": {"low": 1, "high": 3},
        "scale": {"low": 0.5, "high": 2.0},
        "kind": {"choices": ["a", "b"]},
        "residual": True,
        "pool": "avg",  # a cnn-only key elsewhere: an own network may take it
        "lr": 0.01,
    }
    spec = parse_spec(_raw({"entry": "pkg.nets:build"}, space), source="f")
    assert (spec.model, spec.entry) == (OWN_MODEL, "pkg.nets:build")
    assert spec.space["blocks"] == IntParam(1, 3)
    assert spec.space["scale"] == FloatParam(0.5, 2.0)


def test_a_stored_own_spec_round_trips_and_its_folder_is_not_its_identity() -> None:
    spec = parse_spec(_raw({"entry": "nets:build"}, {"width": 8}), source="f")
    stored = {**spec.to_dict(), "entry_dir": "/a", "entry_sha256": "ab" * 32}
    back = spec_from_dict(stored)
    assert (back.entry_dir, back.entry_sha256) == ("/a", "ab" * 32)
    assert spec_from_dict(back.to_dict()) == back
    moved = spec_from_dict({**stored, "entry_dir": "/b"})
    assert moved.identity() == back.identity()
    changed = spec_from_dict({**stored, "entry_sha256": "cd" * 32})
    assert changed.identity() != back.identity()  # other code: another experiment


@pytest.mark.parametrize(
    ("model", "space", "message"),
    [
        ({"entry": "nets"}, None, r"model\.entry: 'nets' must be 'module:function'"),
        ({"entry": "a b:c"}, None, r"model\.entry: 'a b:c' must be"),
        ({"entry": 3}, None, r"model\.entry: 3 must be"),
        ({"entry": "n:b", "name": "mlp"}, None, r"model: give name .* or entry .*, not both"),
        ({"name": "mlp"}, {"blocks": 2}, r"space\.blocks: unknown hyperparameter 'blocks'"),
        ({"entry": "n:b"}, {"my-key": 2}, r"space\.my-key: .* must be a Python identifier"),
        ({"entry": "n:b"}, {"k": [1, 2]}, r"space\.k: value \[1, 2\] is not allowed"),
        ({"entry": "n:b"}, {"k": 2**40}, r"space\.k: value 1099511627776 is not allowed"),
        ({"entry": "n:b"}, {"depth": 0}, r"space\.depth: value 0 is not allowed"),
        ({"entry": "n:b"}, {"activation": "nope"}, r"space\.activation: value 'nope'"),
    ],
)
def test_a_bad_own_network_entry_is_named(
    model: dict[str, Any], space: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(_raw(model, space), source="f")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"entry_sha256": "xyz"}, r"entry_sha256: 'xyz' must be 64 lowercase hex digits"),
        ({"entry_dir": 5}, r"entry_dir: 5 must be a folder path"),
    ],
)
def test_a_corrupt_stored_own_source_is_named(changes: dict[str, Any], message: str) -> None:
    spec = parse_spec(_raw({"entry": "nets:build"}), source="f")
    with pytest.raises(SpecError, match=message):
        spec_from_dict({**spec.to_dict(), **changes})


def test_a_stored_builtin_spec_with_an_own_source_is_refused() -> None:
    spec = parse_spec(_raw({"name": "mlp"}), source="f")
    with pytest.raises(SpecError, match=r"entry_dir: '/a': an own network's source without"):
        spec_from_dict({**spec.to_dict(), "entry_dir": "/a"})


def test_known_configurations_may_set_an_own_networks_keys() -> None:
    raw = _raw({"entry": "nets:build"}, {"blocks": {"low": 1, "high": 4}, "lr": 0.01})
    spec = parse_spec({**raw, "enqueue": [{"blocks": 3}]}, source="f")
    assert spec.enqueue == ({"blocks": 3},)
    with pytest.raises(SpecError, match=r"enqueue #1: blocks: 9 is outside the searched range"):
        parse_spec({**raw, "enqueue": [{"blocks": 9}]}, source="f")
    with pytest.raises(SpecError, match=r"enqueue #1: other: unknown hyperparameter 'other'"):
        parse_spec({**raw, "enqueue": [{"other": 1}]}, source="f")
