"""Progress of a launch: one consistent snapshot, its pace, and how it is shown."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from hpo.report.console import LaunchProgress, console
from hpo.study.progress import Pace, StudyProgress, pace, progress_of
from hpo.study.records import BUDGET_ATTR


def _study(direction: str = "maximize") -> optuna.Study:
    study = optuna.create_study(direction=direction, storage=optuna.storages.InMemoryStorage())
    study.set_user_attr(BUDGET_ATTR, 5)
    return study


def test_snapshot_counts_only_finished_trials_and_their_best() -> None:
    study = _study()
    study.enqueue_trial({})
    running = study.ask()  # claimed, not finished: neither counted nor a best
    study.tell(study.ask(), 0.5)
    study.tell(study.ask(), state=TrialState.PRUNED)
    study.tell(study.ask(), 0.7)
    assert running.number == 0
    assert progress_of(study) == StudyProgress(finished=3, target=5, best=0.7)


def test_snapshot_follows_the_direction_and_has_no_best_before_a_completion() -> None:
    study = _study("minimize")
    assert progress_of(study) == StudyProgress(finished=0, target=5, best=None)
    study.tell(study.ask(), 0.5)
    study.tell(study.ask(), 0.2)
    assert progress_of(study).best == 0.2


def test_pace_counts_this_launch_only() -> None:
    # 2 trials were done before this launch; 4 more in 120 s: 2 per minute, 4 left -> 120 s.
    assert pace(2, StudyProgress(6, 10, 0.9), 120.0) == Pace(per_minute=2.0, seconds_left=120.0)


@pytest.mark.parametrize(
    "finished, target, expected",
    [(3, 10, Pace(None, None)), (10, 10, Pace(None, 0.0))],
)
def test_pace_before_any_trial_of_this_launch(finished, target, expected) -> None:
    assert pace(finished, StudyProgress(finished, target, None), 30.0) == expected


class _Spec:
    name = "demo"

    class sampler:
        name = "tpe"

    class pruner:
        name = "median"


def test_plain_lines_show_count_best_rate_and_time_left(capsys) -> None:
    with console.capture() as captured, LaunchProgress("sqlite:///x.db", live=False) as shown:
        shown.start(_Spec, [], None)
        shown(StudyProgress(0, 4, None))
        shown(StudyProgress(0, 4, None))  # unchanged: no new line
        shown(StudyProgress(1, 4, 0.5))
    lines = captured.get().strip().splitlines()
    assert lines[0].startswith("study demo in sqlite:///x.db: 0 worker(s), sampler tpe")
    assert lines[1] == "demo  0/4 trials  best -  - trials/min  - left"
    assert len(lines) == 3
    assert lines[2].startswith("demo  1/4 trials  best 0.5000  ")
    assert "trials/min" in lines[2] and lines[2].endswith(" left")
    assert "- trials/min" not in lines[2]
