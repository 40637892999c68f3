"""What `hpo studies` and `hpo best` print: the studies table and a trial's table."""

from __future__ import annotations

import re
from collections import Counter

import optuna
import pytest
from rich.console import Console

from hpo.report import console
from hpo.study.summary import StudySummary

COLUMNS = "study model direction budget complete pruned fail running waiting best"


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> Console:
    """The console hpo prints to, recording at a fixed width."""
    recorder = Console(record=True, width=140, highlight=False)
    monkeypatch.setattr(console, "console", recorder)
    return recorder


def _rows(text: str) -> list[list[str]]:
    """The cells of each table row in rendered text (border lines have none)."""
    return [
        [cell.strip() for cell in re.split("[│┃]", line)[1:-1]]
        for line in text.splitlines()
        if "│" in line or "┃" in line
    ]


def _trial(**user_attrs: object) -> optuna.trial.FrozenTrial:
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    study.add_trial(
        optuna.trial.create_trial(
            value=0.875,
            params={"lr": 0.0123456, "activation": "relu"},
            distributions={
                "lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
                "activation": optuna.distributions.CategoricalDistribution(["relu", "tanh"]),
            },
            user_attrs=user_attrs,
        )
    )
    return study.trials[0]


def test_studies_table_has_a_row_per_study_and_dashes_for_what_is_unknown(
    shown: Console,
) -> None:
    summaries = [
        StudySummary(
            "digits-cnn",
            "maximize",
            "cnn",
            30,
            Counter({"COMPLETE": 20, "PRUNED": 5, "FAIL": 1, "RUNNING": 2}),
            0.987654,
        ),
        StudySummary("plain", "minimize", None, None, Counter(), None),  # not made by hpo
    ]
    console.print_studies(summaries, "sqlite:///x.db")
    text = shown.export_text()
    assert text.startswith("Studies in sqlite:///x.db")
    assert _rows(text) == [
        COLUMNS.split(),
        ["digits-cnn", "cnn", "maximize", "30", "20", "5", "1", "2", "0", "0.9877"],
        ["plain", "-", "minimize", "-", "0", "0", "0", "0", "0", "-"],
    ]


def test_a_stopped_study_is_said_to_be_stopped_under_the_table(shown: Console) -> None:
    reason = "stopped: no improvement in 50 trials"
    summaries = [
        StudySummary("flat", "maximize", "mlp", 200, Counter({"COMPLETE": 61}), 0.9, None, reason),
        StudySummary(HOSTILE, "maximize", "mlp", 9, Counter(), None, None, "stopped: [b]x\x1b"),
    ]
    console.print_studies(summaries, "sqlite:///x.db")
    lines = shown.export_text().splitlines()
    assert lines[-2:] == [f"Study flat {reason}", f"Study {HOSTILE_SHOWN} stopped: [b]x\\x1b"]


def test_no_studies_says_how_to_start_one(shown: Console) -> None:
    console.print_studies([], "sqlite:///x.db")
    assert shown.export_text() == (
        "No studies in sqlite:///x.db yet; start one with `hpo launch study FILE`.\n"
    )


def test_trial_table_shows_value_test_accuracy_params_and_one_value_attrs(
    shown: Console,
) -> None:
    trial = _trial(test_accuracy=0.91234, n_params=1234, diag_init_act_std=[1.0, 0.5])
    console.print_trial(trial, title="Best trial (maximize)")
    text = shown.export_text()
    assert text.startswith("Best trial (maximize)")
    rows = _rows(text)
    assert rows[:3] == [["trial", "0"], ["value", "0.875"], ["test accuracy", "0.9123"]]
    assert sorted(rows[3:]) == [
        ["attr n_params", "1234"],
        ["param activation", "relu"],
        ["param lr", "0.01235"],
    ]


def test_trial_table_with_show_all_keeps_the_diagnostics(shown: Console) -> None:
    console.print_trial(_trial(diag_init_act_std=[1.0, 0.5]), title="Trial 0", show_all=True)
    rows = _rows(shown.export_text())
    assert ["attr diag_init_act_std", "[1.0, 0.5]"] in rows
    assert not [row for row in rows if row[0] == "test accuracy"]  # none recorded


HOSTILE = "evil[/] [bold]x\x1b[2J\x1b]0;title\x07\nnext"
HOSTILE_SHOWN = "evil[/] [bold]x\\x1b[2J\\x1b]0;title\\x07\\nnext"


def test_names_are_printed_as_written_with_control_characters_escaped(shown: Console) -> None:
    summaries = [StudySummary(HOSTILE, "maximize", "[red]cnn", None, Counter(), None)]
    console.print_studies(summaries, "sqlite:///[x].db")
    text = shown.export_text()
    assert "Studies in sqlite:///[x].db" in text
    assert HOSTILE_SHOWN in "".join(row[0] for row in _rows(text)[1:])  # may wrap in its cell
    assert "[red]cnn" in text
    assert "\x1b" not in text and "\x07" not in text


def test_trial_attrs_with_markup_and_escapes_print_as_written(shown: Console) -> None:
    trial = _trial(host="[/]box", note="a\x1b[31mred")
    console.print_trial(trial, title="Best trial of evil[/] (maximize)")
    text = shown.export_text()
    assert text.startswith("Best trial of evil[/] (maximize)")
    rows = _rows(text)
    assert ["attr host", "[/]box"] in rows
    assert ["attr note", "a\\x1b[31mred"] in rows


@pytest.mark.parametrize("live", [False, True], ids=["piped", "terminal"])
def test_launch_progress_and_summary_show_a_hostile_name(shown: Console, live: bool) -> None:
    from types import SimpleNamespace

    from hpo.study.progress import StudyProgress

    spec = SimpleNamespace(
        name=HOSTILE, sampler=SimpleNamespace(name="tpe"), pruner=SimpleNamespace(name="none")
    )
    with console.LaunchProgress("sqlite:///x.db", live=live) as progress:
        progress.start(spec, [SimpleNamespace(gpu=None)], None)
        progress(StudyProgress(finished=1, target=2, best=0.5))
    console.print_summary(StudySummary(HOSTILE, "maximize", "mlp", 2, Counter(), None), 1.0)
    text = shown.export_text()
    assert f"study {HOSTILE_SHOWN} in sqlite:///x.db" in text
    assert f"Study {HOSTILE_SHOWN} finished" in text
    assert "\x1b" not in text
