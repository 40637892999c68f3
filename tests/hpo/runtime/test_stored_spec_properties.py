"""Property: whatever is edited into a study's stored spec (the `hpo_spec` study attr),
`hpo worker` either runs the trial or exits 2 with one line naming the stored key; never a
traceback, never a trial failed by a value the spec should have refused.

Each example creates a one-trial study of a tiny MLP on rings (one epoch), mutates its
stored spec with the hostile values of the study-file property test (and what only JSON
holds: null, integers past 64 bits), and runs the worker in this process. Derandomized with
a fixed number of examples, so CI runs the same specs every time.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState

from tests.helpers import (
    hostile_values,
    mutated,
    option_paths,
    run_main,
    space_paths,
    study_names,
    study_text,
)

STORED_EXAMPLES = 50
SPACE = "depth = 1\nwidth = { low = 4, high = 8 }\nlr = { low = 1e-3, high = 1e-1, log = true }"
_numbers = itertools.count()  # one study per example, all in one storage
# How the worker words a trial's failure that is training's own (hpo.runtime.worker).
TRAINING_FAILURES = ("diverged: ", "too large: ", "CUDA out of memory: ")


@pytest.fixture(scope="module")
def storage_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield f"sqlite:///{tmp_path_factory.mktemp('stored-spec-properties') / 'hpo.db'}"


def _base_study(url: str, folder: Path) -> optuna.Study:
    """A fresh one-trial study whose trial trains in milliseconds."""
    from hpo.config.spec import load_spec
    from hpo.storage.open import open_storage
    from hpo.study.create import open_study

    name = f"s{next(_numbers)}"
    file = folder / f"{name}.toml"
    data = 'name = "rings"\nmax_train = 100\nmax_val = 50'
    text = study_text(
        name,
        SPACE,
        trials=1,
        data=data,
        train="diagnostics = false",
        sampler="tpe",
        pruner="median",
    )
    file.write_text(text)  # tpe and median: the options most often edited have a home
    return open_study(open_storage(url), load_spec(file))


def _changed(before: Any, after: Any, path: tuple[str, ...] = ()) -> set[str]:
    """The keys on the paths where `after` differs from `before`."""
    if not (isinstance(before, dict) and isinstance(after, dict)):
        return set(path) if repr(before) != repr(after) else set()
    keys: set[str] = set()
    for key in set(before) | set(after):
        keys |= _changed(before.get(key, KeyError), after.get(key, KeyError), (*path, key))
    return keys


@pytest.mark.filterwarnings("ignore::FutureWarning")  # Optuna's on its deprecated options
@settings(
    max_examples=STORED_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_a_worker_runs_an_edited_stored_spec_or_refuses_it_in_one_line(
    storage_url: str, tmp_path_factory: pytest.TempPathFactory, data: Any
) -> None:
    from hpo.study.records import SPEC_ATTR

    study = _base_study(storage_url, tmp_path_factory.getbasetemp())
    stored = study.user_attrs[SPEC_ATTR]
    values = hostile_values(study_names(), stored=True)
    # One change at a time: with more, nearly every spec is refused and few run.
    paths = space_paths() + option_paths()
    edited = data.draw(mutated(stored, values, paths, changes=1), label="spec")
    study.set_user_attr(SPEC_ATTR, edited)

    code, out, err = run_main(
        "--storage", storage_url, "worker", "--study", study.study_name, env={"HPO_THREADS": "1"}
    )

    event(f"exit {code}")  # --hypothesis-show-statistics: how many ran, how many refused
    assert code in (0, 2), (code, out, err)
    assert "Traceback" not in out + err
    trials = study.get_trials()
    if code == 2:
        assert err.startswith("error: ") and len(err.splitlines()) == 1, err
        assert err.rstrip("\n").isprintable(), f"control characters reach the terminal: {err!r}"
        assert study.study_name in err, err
        keys = _changed(stored, edited)
        named = [key for key in keys if key in err or repr(key)[1:-1] in err]  # or escaped
        assert named, f"none of {sorted(keys)} named: {err}"
        assert [t.state for t in trials] == [TrialState.WAITING]  # refused before it ran
    else:
        # A trial may fail as training can (it diverged, it is too large for the device), never
        # with an exception (`OverflowError: ...`) that the spec's checks should have averted.
        reasons = [t.user_attrs.get("fail_reason", "") for t in trials if t.state.is_finished()]
        failed = [r for r in reasons if r and not r.startswith(TRAINING_FAILURES)]
        assert not failed, f"a stored spec that passed validation failed its trial: {failed}"
