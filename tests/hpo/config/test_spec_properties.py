"""Property: any study file, however mangled, is launched (exit 0) or refused in one line
(exit 2) with nothing written to the storage; never a traceback, never another exit.

Files are drawn from the schema (the spec's sections and fields, the space's keys and
their valid values, each sampler's and pruner's constructor options), then mutated with
hostile values: wrong types, huge and negative numbers, NaN and infinities, markup and
control characters, unknown keys, missing keys and sections. Derandomized with a fixed
number of examples, so CI runs the same files every time.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hpo.config.space import INT_KEYS, SPACE_KEYS
from hpo.config.spec import MODEL_ONLY_KEYS, DataSpec, PrunerSpec, SamplerSpec, StudySpec, TrainSpec
from hpo.config.vocabulary import PRUNERS, SAMPLERS
from models.vocabulary import MODEL_NAMES
from tests.helpers import (
    hostile_values,
    mutated,
    option_defaults,
    option_paths,
    run_main,
    space_paths,
    study_names,
    toml_text,
)

FILE_EXAMPLES = 200
NAMES = study_names()
# The values valid space entries are drawn from (each key keeps those its check allows).
POOL = (0, 1, 2, 3, 5, 8, 16, 64, 0.0, 1e-4, 1e-3, 1e-2, 0.1, 0.3, 0.5, 0.9, True, False, *NAMES)
SECTIONS = {"data": DataSpec, "train": TrainSpec, "sampler": SamplerSpec, "pruner": PrunerSpec}


def section_keys() -> dict[str, tuple[str, ...]]:
    """The keys of each section of a study file, from the spec's dataclasses."""
    keys = {name: tuple(f.name for f in dataclasses.fields(cls)) for name, cls in SECTIONS.items()}
    nested = (*SECTIONS, "model", "space")
    keys["study"] = tuple(f.name for f in dataclasses.fields(StudySpec) if f.name not in nested)
    keys["model"] = ("name",)
    return keys


def schema_paths() -> tuple[tuple[str, ...], ...]:
    """Every key path the schema knows, whether or not a drawn file has it."""
    paths = {(section, key) for section, keys in section_keys().items() for key in keys}
    paths |= {(f.name,) for f in dataclasses.fields(StudySpec)}  # sections; [[enqueue]]
    return tuple(sorted(paths)) + space_paths() + option_paths()


def valid_values(key: str) -> list[Any]:
    """The values of POOL that `key` allows."""
    check = SPACE_KEYS[key][0]
    return [v for v in POOL if check(v)]


@st.composite
def space_entry(draw: Any, key: str) -> Any:
    """A fixed value, a list of choices or a range of `key`'s valid values."""
    values = valid_values(key)
    numbers = sorted({v for v in values if not isinstance(v, bool | str)})
    kind = draw(st.sampled_from(("fixed", "choices", "range") if len(numbers) > 1 else ("fixed",)))
    if kind == "fixed":
        return draw(st.sampled_from(values))
    if kind == "choices":
        return {
            "choices": draw(st.lists(st.sampled_from(values), min_size=1, max_size=3, unique=True))
        }
    low, high = sorted(draw(st.lists(st.sampled_from(numbers), min_size=2, max_size=2)))
    entry: dict[str, Any] = {"low": low, "high": high}
    if low > 0 and draw(st.booleans()):
        entry["log"] = True
    elif key in INT_KEYS and draw(st.booleans()):
        entry["step"] = draw(st.sampled_from((1, 2)))
    return entry


@st.composite
def study_files(draw: Any) -> dict[str, Any]:
    """A study file as a table: drawn from the schema, valid but for the fits between keys
    (a kernel on an mlp, crop_flip on digits) that the parser checks."""
    model = draw(st.sampled_from(MODEL_NAMES))
    sampler = draw(st.sampled_from(SAMPLERS))
    pruner = draw(st.sampled_from(PRUNERS))
    sampler_options = option_defaults("sampler", sampler)
    pruner_options = option_defaults("pruner", pruner)
    keys = [k for k in SPACE_KEYS if model in MODEL_ONLY_KEYS.get(k, (model,))]
    space = draw(st.dictionaries(st.sampled_from(keys), st.none(), max_size=4))
    return {
        "study": {"name": draw(st.sampled_from(("p", "props-1", "a b"))), "trials": 2},
        "model": {"name": model},
        "data": {
            "name": "digits" if model != "mlp" else draw(st.sampled_from(("rings", "digits")))
        },
        "train": {"epochs": draw(st.integers(1, 3))},
        "sampler": {
            "name": sampler,
            "seed": draw(st.integers(0, 9)),
            "options": draw(_subset(sampler_options)),
        },
        "pruner": {"name": pruner, "options": draw(_subset(pruner_options))},
        "space": {key: draw(space_entry(key)) for key in space},
    }


def _subset(options: dict[str, Any]) -> Any:
    if not options:
        return st.just({})
    return st.lists(st.sampled_from(sorted(options)), max_size=2, unique=True).map(
        lambda keys: {key: options[key] for key in keys}
    )


@st.composite
def mangled_study_files(draw: Any) -> dict[str, Any]:
    """A drawn study file, one in five as drawn, the others mutated."""
    document = draw(study_files())
    if draw(st.integers(0, 4)) == 0:
        return document
    return draw(mutated(document, hostile_values(NAMES), schema_paths()))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spec-properties")


@pytest.mark.filterwarnings("ignore::FutureWarning")  # Optuna's on its deprecated options
@settings(
    max_examples=FILE_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(document=mangled_study_files())
def test_any_study_file_launches_or_is_refused_in_one_line_writing_nothing(
    workdir: Path, document: dict[str, Any]
) -> None:
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        file, db = Path(folder) / "study.toml", Path(folder) / "hpo.db"
        file.write_text(toml_text(document), encoding="utf-8")
        args = ("--storage", f"sqlite:///{db}", "launch", "study", str(file), "--workers", "0")
        code, out, err = run_main(*args)
        event(f"exit {code}")  # --hypothesis-show-statistics: how many launched, refused
        assert code in (0, 2), (code, out, err)
        assert "Traceback" not in out + err
        if code == 2:
            assert err.startswith("error: ") and len(err.splitlines()) == 1, err
            assert err.rstrip("\n").isprintable(), f"control characters reach the terminal: {err!r}"
            assert sorted(os.listdir(folder)) == ["study.toml"], f"refused, yet written: {err}"
        else:
            assert db.exists()
