"""What the commands do, called as the CLI calls them."""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path

import optuna
import pytest

from hpo.config.settings import Settings
from hpo.errors import HpoError
from hpo.service import LaunchOutcome, best_of, join_study, launch_study
from hpo.study.summary import StudySummary
from tests.helpers import run_hpo, study_text

# Plain SGD at lr 10 on a deep He-initialised ReLU net: the loss becomes inf/NaN.
DIVERGING = study_text(
    "diverges",
    'lr = 10.0\noptimizer = "sgd"\ninit = "he_normal"\ndepth = 4\nwidth = 64',
    epochs=3,
    data='name = "rings"\nmax_train = 300',
)


def _settings(tmp_path: Path) -> Settings:
    return Settings(f"sqlite:///{tmp_path / 'hpo.db'}", 10, str(tmp_path / "arts"), 0.0)


def _summary(best: object) -> StudySummary:
    return StudySummary("s", "maximize", "mlp", 2, Counter({"FAIL": 2}), None, best)


def test_outcome_without_a_completed_trial_is_an_error() -> None:
    with pytest.raises(HpoError, match="ended with no completed trial"):
        LaunchOutcome("s", _summary(None), 1.0, (0,)).raise_for_failures()
    with pytest.raises(HpoError, match="1 worker\\(s\\) exited with errors"):
        LaunchOutcome("s", _summary(object()), 1.0, (0, 3)).raise_for_failures()
    LaunchOutcome("s", _summary(object()), 1.0, (0, 0)).raise_for_failures()
    LaunchOutcome("s", None, 1.0).raise_for_failures()  # created only: nothing to judge


def test_launch_where_every_trial_fails_exits_non_zero(tmp_path: Path) -> None:
    study_file = tmp_path / "diverges.toml"
    study_file.write_text(DIVERGING)
    run = run_hpo("launch", "study", str(study_file), cwd=tmp_path)
    assert run.returncode == 2, run.stdout + run.stderr
    assert (
        run.stderr.strip()
        .splitlines()[-1]
        .startswith("error: study 'diverges' ended with no completed trial")
    )
    assert "Traceback" not in run.stderr
    trials = optuna.load_study(study_name="diverges", storage=f"sqlite:///{tmp_path}/hpo.db").trials
    assert [t.state.name for t in trials] == ["FAIL", "FAIL"]
    assert all(t.user_attrs["fail_reason"].startswith("diverged") for t in trials)


def test_launch_names_the_metric_and_joins_run_the_rest(tmp_path: Path, write_study) -> None:
    settings = _settings(tmp_path)
    created = launch_study(settings, str(write_study("j", trials=3)), workers=0)
    assert created.summary is None
    study = optuna.load_study(study_name="j", storage=settings.storage_url)
    assert study.metric_names == ["val_accuracy"]
    join_study(settings, "j", gpus="none", worker_index=5)
    _, best = best_of(settings, "j")
    assert best.state.name == "COMPLETE"
    assert sum(t.state.is_finished() for t in study.get_trials()) == 3


def test_best_of_unknown_study_lists_what_is_there(tmp_path: Path, write_study) -> None:
    settings = _settings(tmp_path)
    launch_study(settings, str(write_study("here", trials=1)), workers=0)
    with pytest.raises(HpoError, match=r"no study named 'ghost' .* \(studies there: here\)"):
        best_of(settings, "ghost")
    with pytest.raises(HpoError, match="has no completed trial yet"):
        best_of(settings, "here")


def test_launch_warns_when_the_largest_configuration_cannot_fit(tmp_path: Path) -> None:
    study_file = tmp_path / "huge.toml"
    study_file.write_text(
        DIVERGING.replace('name = "diverges"', 'name = "huge"')
        .replace("lr = 10.0", "lr = 1e-3")
        .replace("depth = 4\nwidth = 64", "width = { low = 8, high = 8192 }\ndepth = 8")
        .replace("trials = 2", "trials = 1")
        # a limit that the widest network (8 x 8192^2 weights, ~2 GB) exceeds
        .replace("[train]", "[train]\nmax_memory_mb = 500")
    )
    warnings: list[str] = []
    with contextlib.suppress(HpoError):  # the one sampled trial may be too large as well
        launch_study(_settings(tmp_path), str(study_file), on_warning=warnings.append)
    [warning] = warnings
    assert warning.startswith("the largest configuration of the search space is too large")
