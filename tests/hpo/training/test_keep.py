"""The best `keep` trials' weights stay in the artifact store, and only theirs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore

from hpo.config.settings import Settings
from hpo.service import launch_study
from hpo.training.data import load_dataset
from hpo.training.keep import ModelKeeper, kept_models, model_keeper
from hpo.training.modelfile import model_record, wrap
from models import create_model
from tests.helpers import with_keep


def stored_files(artifacts: Path) -> list[Path]:
    """The artifact files (the store keeps each as a file named by its id; checkpoints
    live in a subfolder)."""
    return sorted(p for p in artifacts.iterdir() if p.is_file()) if artifacts.exists() else []


@pytest.mark.parametrize("url_fixture", ["sqlite_url", "postgres_url"])
def test_keep_two_of_six_trials_leaves_the_two_best_weights(
    tmp_path: Path, write_study: Any, url_fixture: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(url_fixture)
    artifacts = tmp_path / "arts"
    settings = Settings(url, 10, str(artifacts), 30.0)
    study_file = with_keep(write_study("keep2", trials=6, epochs=1), 2)
    launch_study(settings, str(study_file), workers=1)

    study = optuna.load_study(study_name="keep2", storage=url)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 6
    best_two = sorted(complete, key=lambda t: (-t.value, t.number))[:2]
    holders = kept_models(study, FileSystemArtifactStore(str(artifacts)))
    assert sorted(h.number for h in holders) == sorted(t.number for t in best_two)
    assert [p.name for p in stored_files(artifacts)] == sorted(h.artifact_id for h in holders)


def test_keep_zero_keeps_nothing(tmp_path: Path, write_study: Any, sqlite_url: str) -> None:
    artifacts = tmp_path / "arts"
    settings = Settings(sqlite_url, 10, str(artifacts), 30.0)
    launch_study(settings, str(with_keep(write_study("none", trials=2, epochs=1), 0)), workers=1)
    assert stored_files(artifacts) == []
    assert model_keeper(artifacts, 0, "maximize") is None
    assert model_keeper(None, 3, "maximize") is None


@pytest.fixture(scope="module")
def tiny_model() -> tuple[Any, dict[str, Any]]:
    data = load_dataset("rings", max_train=50)
    net = create_model("mlp", in_shape=data.in_shape, num_outputs=1, depth=1, width=4)
    record = model_record(
        model="mlp", params={}, model_params={"depth": 1, "width": 4}, data=data, seed=0
    )
    return wrap(net, data), record


def test_offers_keep_the_best_and_a_trim_undoes_a_race(
    tmp_path: Path, sqlite_url: str, tiny_model: tuple[Any, dict[str, Any]]
) -> None:
    """Offers made before the others are told (two workers at once) may keep one too many;
    the next offer and trim() bring it back to `keep`, best first, ties to the earlier."""
    model, record = tiny_model
    keeper = ModelKeeper(tmp_path / "arts", 2, "minimize")
    study = optuna.create_study(study_name="race", storage=sqlite_url, direction="minimize")

    def numbers() -> list[int]:
        return sorted(h.number for h in kept_models(study, keeper.store))

    def run(values: list[float]) -> None:
        """Trials that each offer their model before any of them is told."""
        trials = [study.ask() for _ in values]
        for trial, value in zip(trials, values, strict=True):
            keeper.offer(trial, value, model, record)
        for trial, value in zip(trials, values, strict=True):
            study.tell(trial, value)

    run([5.0])
    run([3.0])
    assert numbers() == [0, 1]
    run([4.0])  # 2 beats 0 (5.0): 0 loses its weights
    assert numbers() == [1, 2]
    run([9.0])  # worse than both: not kept
    assert numbers() == [1, 2]
    run([1.0, 2.0])  # 5 does not see 4 (running) as a rival: one too many for a while
    assert numbers() == [1, 4, 5]
    run([2.0])  # the next offer trims; a tie with 5 leaves the earlier trial its place
    assert numbers() == [4, 5]
    run([0.5, 0.6])
    assert numbers() == [4, 7, 8]
    keeper.trim(study)  # what each worker does when it ends
    assert numbers() == [7, 8]
    assert len(stored_files(tmp_path / "arts")) == 2


def test_a_running_holder_is_left_alone_and_a_failed_one_removed(
    tmp_path: Path, sqlite_url: str, tiny_model: tuple[Any, dict[str, Any]]
) -> None:
    model, record = tiny_model
    keeper = ModelKeeper(tmp_path / "arts", 1, "maximize")
    study = optuna.create_study(study_name="states", storage=sqlite_url, direction="maximize")
    dead, running = study.ask(), study.ask()
    keeper.offer(dead, 0.9, model, record)
    study.tell(dead, state=optuna.trial.TrialState.FAIL)  # its worker died after the upload
    keeper.offer(running, 0.5, model, record)  # not told yet
    keeper.trim(study)
    assert [h.number for h in kept_models(study, keeper.store)] == [1]
    assert len(stored_files(tmp_path / "arts")) == 1
