"""`[study] stop_after`: a study that stops improving stops, says why, and is not restarted
by a relaunch unless told to (`--resume-stopped`); on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo.config.spec import load_spec
from hpo.errors import HpoError
from hpo.runtime.worker import WorkerReport, run_worker
from hpo.storage.open import open_storage
from hpo.study.create import open_study
from hpo.study.records import BUDGET_ATTR, FINISHED, PLATEAU_ATTR, STOPPED_ATTR
from hpo.study.stopping import Plateau, StopRule, advance, replay
from tests.helpers import (
    run_hpo,
    run_main,
    serving_proxy,
    with_study_lines,
    worker_settings,
    zero_cost,
)

MAXIMIZE = StopRule(stop_after=3, min_delta=0.0, maximize=True)


def outcomes(plateau: Plateau, rule: StopRule, *values: float | None) -> list[int]:
    """The streak after each trial (None: a pruned one)."""
    streaks = []
    for value in values:
        state = TrialState.PRUNED if value is None else TrialState.COMPLETE
        plateau = advance(plateau, state, value, rule)
        streaks.append(plateau.streak)
    return streaks


def test_only_a_gain_above_min_delta_starts_the_count_over() -> None:
    assert outcomes(Plateau(), MAXIMIZE, 0.5, 0.5, 0.6, None, 0.4, 0.61) == [0, 1, 0, 1, 2, 0]
    loose = StopRule(stop_after=3, min_delta=0.05, maximize=True)
    # 0.53 and 0.56 each beat the best by less than 0.05 (the best still rises to 0.56)
    assert outcomes(Plateau(), loose, 0.5, 0.53, 0.56, 0.62) == [0, 1, 2, 0]
    lower = StopRule(stop_after=3, min_delta=0.0, maximize=False)
    assert outcomes(Plateau(), lower, 2.0, 2.5, 1.0, 1.0) == [0, 1, 0, 1]


def test_replay_counts_finished_trials_in_the_order_they_finished() -> None:
    study = optuna.create_study(direction="maximize")
    for value in (0.9, 0.5, 0.95, 0.2):
        study.add_trial(optuna.trial.create_trial(value=value))
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
    study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING))
    assert replay(study.get_trials(), MAXIMIZE) == Plateau(0.95, 2)


def _stopping_spec(write_study: Callable[..., Path], name: str, trials: int = 40) -> Path:
    return with_study_lines(write_study(name, trials=trials), "stop_after = 4")


def test_a_constant_study_stops_every_worker_and_a_latecomer_runs_nothing(
    sqlite_url: str, write_study: Callable[..., Path]
) -> None:
    """Three workers: after the first trial none improves, so the fourth more finished stops
    the study; each worker ends once its running trial has finished, queued ones wait."""
    storage = open_storage(sqlite_url, heartbeat_interval=1)
    study = open_study(storage, load_spec(_stopping_spec(write_study, "flat")))
    reports: list[WorkerReport] = []

    def work(index: int) -> None:
        objective = zero_cost(value=0.5, sleep=0.2)
        reports.append(run_worker(storage, "flat", worker_index=index, objective_factory=objective))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    trials = study.get_trials()
    finished = [t for t in trials if t.state in FINISHED]
    assert 5 <= len(finished) <= 5 + 2, len(finished)  # two others may have been running
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert [t for t in trials if t.state == TrialState.WAITING]  # budget left, not run
    stopped = study.user_attrs[STOPPED_ATTR]
    assert stopped["reason"] == "no improvement in 4 trials"
    assert study.user_attrs[PLATEAU_ATTR]["streak"] == len(finished) - 1  # all counted
    late = run_worker(storage, "flat", worker_index=7, objective_factory=zero_cost())
    assert late.trials == 0


def test_a_relaunch_of_a_stopped_study_is_refused_unless_resumed(
    sqlite_url: str, write_study: Callable[..., Path]
) -> None:
    storage = open_storage(sqlite_url)
    spec = load_spec(_stopping_spec(write_study, "again", trials=30))
    study = open_study(storage, spec)
    run_worker(storage, "again", objective_factory=zero_cost(value=0.5))
    assert len([t for t in study.get_trials() if t.state in FINISHED]) == 5

    with pytest.raises(
        HpoError,
        match=r"'again' stopped: no improvement in 4 trials after trial 4, .*--resume-stopped",
    ):
        open_study(storage, spec, trials=50)
    assert study.user_attrs[BUDGET_ATTR] == 30  # nothing written

    open_study(storage, spec, trials=50, resume_stopped=True)
    assert study.user_attrs[STOPPED_ATTR] is None
    run_worker(storage, "again", objective_factory=zero_cost(value=0.5))
    assert len([t for t in study.get_trials() if t.state in FINISHED]) == 5 + 4
    assert study.user_attrs[STOPPED_ATTR]["trial"] == 8


def test_a_worker_behind_the_proxy_records_its_trials_there_and_stops(
    postgres_url: str, write_study: Callable[..., Path]
) -> None:
    with serving_proxy(postgres_url) as url:
        proxy = open_storage(url)
        open_study(proxy, load_spec(_stopping_spec(write_study, "px")))
        report = run_worker(proxy, "px", objective_factory=zero_cost(value=0.5))
    assert report.trials == 5
    study = optuna.load_study(study_name="px", storage=postgres_url)
    assert study.user_attrs[STOPPED_ATTR]["reason"] == "no improvement in 4 trials"


STOP_BOUNDS = {
    "stop_after 0": ("stop_after = 0", "study.stop_after: 0 must be an integer in [1, 1000000]"),
    "stop_after not whole": ("stop_after = 2.5", "study.stop_after: 2.5 must be an integer"),
    "min_delta negative": (
        "stop_after = 5\nmin_delta = -0.1",
        "study.min_delta: -0.1 must be a number >= 0",
    ),
    "min_delta alone": ("min_delta = 0.1", "study.min_delta: 0.1 applies only with stop_after"),
    "min_delta not finite": ("stop_after = 5\nmin_delta = inf", "study.min_delta: inf must be"),
}


@pytest.mark.parametrize("lines, message", STOP_BOUNDS.values(), ids=STOP_BOUNDS.keys())
def test_stop_bounds_are_one_line_and_write_nothing(
    lines: str, message: str, tmp_path: Path, write_study: Callable[..., Path], sqlite_url: str
) -> None:
    path = with_study_lines(write_study("bounds"), lines)
    code, _, err = run_main("launch", "study", str(path), env={"HPO_STORAGE": sqlite_url})
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "hpo.db").exists()


@pytest.mark.slow
@pytest.mark.parametrize("url_fixture", ["sqlite_url", "postgres_url"])
def test_stop_after_ends_a_real_study_early_says_why_and_resumes_only_when_told(
    tmp_path: Path,
    write_study: Callable[..., Path],
    url_fixture: str,
    request: pytest.FixtureRequest,
) -> None:
    """min_delta 1.0: no accuracy beats another by more than 1, so after the first trial
    none improves, and two workers stop after 3 more finished (one may still be running)."""
    url = request.getfixturevalue(url_fixture)
    path = with_study_lines(
        write_study("plateau", trials=30, epochs=1), "stop_after = 3", "min_delta = 1.0"
    )
    launch = ("launch", "study", str(path), "--workers", "2")
    result = run_hpo(*launch, env=worker_settings(url), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    reason = "stopped: no improvement in 3 trials (min_delta 1)"
    assert reason in result.stdout

    study = optuna.load_study(study_name="plateau", storage=url)
    finished = len([t for t in study.get_trials() if t.state in FINISHED])
    assert 4 <= finished <= 5
    assert not study.get_trials(states=(TrialState.RUNNING,))
    env = {"HPO_STORAGE": url}
    for command in (["studies"], ["best", "plateau"]):
        code, out, err = run_main(*command, env=env)
        assert code == 0 and f"plateau {reason}" in out, (out, err)

    queued = len(study.get_trials())
    code, _, err = run_main("launch", "study", str(path), "--trials", "40", env=env)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{reason} after trial" in err and "--resume-stopped" in err
    assert study.user_attrs[BUDGET_ATTR] == 30 and len(study.get_trials()) == queued

    resumed = ("launch", "study", str(path), "--trials", "40", "--resume-stopped")
    code, out, err = run_main(*resumed, env=env)
    assert code == 0 and reason in out, err
    assert len([t for t in study.get_trials() if t.state in FINISHED]) == finished + 3
    assert study.user_attrs[BUDGET_ATTR] == 40
