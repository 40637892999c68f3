"""Multi-objective studies end to end: two workers on SQLite and PostgreSQL, the stored
directions and metric names, a feasible front, and what `hpo best` / `hpo studies` show."""

from __future__ import annotations

import threading
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo.config.objectives import METRIC_DIRECTIONS
from hpo.config.spec import load_spec
from hpo.report.console import print_summary
from hpo.runtime.worker import run_worker
from hpo.storage.open import open_storage
from hpo.study.create import open_study
from hpo.study.progress import progress_of
from hpo.study.summary import summarize
from tests.helpers import run_hpo, run_main, study_text

# Rings, MLPs of 22 to 1,218 params: max_params = 100 leaves depth 1 up to width 19 and
# depth 2 up to width 7, so about two draws in three are infeasible.
SPACE = """depth = { low = 1, high = 2 }
width = { low = 4, high = 32 }
lr = { low = 1e-2, high = 1e-1, log = true }
batch_size = 64"""
MAX_PARAMS = 100
METRICS = {
    2: ["val_accuracy", "params"],
    3: ["val_accuracy", "params", "latency_ms"],
}


def pareto_study(
    folder: Path, name: str, metrics: list[str], *, trials: int = 6, max_params: int = MAX_PARAMS
) -> Path:
    path = folder / f"{name}.toml"
    text = study_text(name, SPACE, trials=trials, data='name = "rings"\nmax_train = 200')
    text = text.replace("[study]\n", f"[study]\nmetrics = {metrics!r}\n".replace("'", '"'), 1)
    text = text.replace('name = "random"', 'name = "nsga2"\noptions = { population_size = 4 }')
    path.write_text(text + f"\n[constraints]\nmax_params = {max_params}\n")
    return path


def run_two_workers(url: str, name: str) -> None:
    """Two workers of the study at once, each with its own storage connection."""
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            run_worker(open_storage(url), name, worker_index=index, artifacts=None)
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors


@pytest.mark.parametrize("count", sorted(METRICS))
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_multi_objective_study_completes_with_two_workers(
    kind: str, count: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(f"{kind}_url")
    metrics = METRICS[count]
    name = f"pareto{count}"
    open_study(open_storage(url), load_spec(pareto_study(tmp_path, name, metrics)))

    run_two_workers(url, name)

    study = optuna.load_study(study_name=name, storage=url)
    assert study.metric_names == metrics
    assert [d.name.lower() for d in study.directions] == [METRIC_DIRECTIONS[m] for m in metrics]
    trials = study.get_trials()
    assert len(trials) == 6 and {t.state for t in trials} == {TrialState.COMPLETE}
    for trial in trials:
        assert len(trial.values) == count
        assert trial.values[1] == trial.user_attrs["n_params"]
        assert ("train_seconds" in trial.user_attrs) == (trial.user_attrs["n_params"] <= MAX_PARAMS)
    feasible = [t.user_attrs["n_params"] <= MAX_PARAMS for t in trials]
    assert any(feasible) and not all(feasible), "the draw should try both kinds"
    front = study.best_trials
    assert front
    for trial in front:
        assert all(value <= 0 for value in trial.constraints.values())
        assert trial.user_attrs["n_params"] <= MAX_PARAMS


def test_best_prints_the_front_and_studies_its_size(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "front"
    path = pareto_study(tmp_path, name, METRICS[3], max_params=300)
    open_study(open_storage(sqlite_url), load_spec(path))
    run_worker(open_storage(sqlite_url), name, artifacts=None)
    study = optuna.load_study(study_name=name, storage=sqlite_url)
    front = sorted(t.number for t in study.best_trials)
    infeasible = [t.number for t in study.get_trials() if t.constraints["0"] > 0]

    code, out, err = run_main("--storage", sqlite_url, "best", name)
    assert code == 0, err
    assert f"Pareto front of {name}: {len(front)} trial(s)" in out
    for column in ("val_accuracy", "params", "latency_ms", "width"):
        assert column in out
    rows = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│")]
    assert sorted(map(int, rows)) == front
    assert infeasible and not set(infeasible) & set(front)

    assert progress_of(study).front == len(front)  # the launch's progress line
    print_summary(summarize(study), 1.0)  # what `hpo launch` prints when the study ends
    assert f"Pareto front of {name}" in capsys.readouterr().out

    code, out, err = run_main("--storage", sqlite_url, "studies")
    assert code == 0, err
    assert f"front of {len(front)}" in out and "maximize/minimize/minimize" in out

    code, _, err = run_main("--storage", sqlite_url, "retrain", name, "--out", str(tmp_path / "o"))
    assert code == 2 and "multi-objective" in err and "--trial N" in err


@pytest.mark.postgres
def test_hpo_launch_runs_a_constrained_two_metric_study_with_two_worker_processes(
    postgres_url: str, tmp_path: Path
) -> None:
    """What a user runs: `hpo launch study FILE --workers 2` (two `hpo worker` processes)."""
    path = pareto_study(tmp_path, "launched-front", METRICS[2], trials=8)
    result = run_hpo(
        "--storage", postgres_url, "launch", "study", str(path), "--workers", "2", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    study = optuna.load_study(study_name="launched-front", storage=open_storage(postgres_url))
    assert study.directions == [
        optuna.study.StudyDirection.MAXIMIZE,
        optuna.study.StudyDirection.MINIMIZE,
    ]
    assert study.metric_names == METRICS[2]
    finished = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(finished) == 8
    assert study.best_trials and all(t.values[1] <= MAX_PARAMS for t in study.best_trials)
