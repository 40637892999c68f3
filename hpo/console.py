"""Terminal rendering of launches and studies (rich). Data comes in ready-made."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from hpo.study import Budget
from hpo.summary import StudySummary, trial_details

# Piped output (CI logs, files) gets a wide table instead of rich's 80-column default.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class ProgressPrinter:
    """Prints a line whenever the number of finished trials or the best value changes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.last: tuple[int, float | None] | None = None

    def __call__(self, budget: Budget, best: float | None) -> None:
        key = (budget.finished, best)
        if key == self.last:
            return
        self.last = key
        best_text = "-" if best is None else f"{best:.4f}"
        console.print(
            f"[bold]{self.name}[/]  {budget.finished}/{budget.target} trials  best {best_text}",
            soft_wrap=True,
        )
        sys.stdout.flush()


def print_summary(summary: StudySummary, wall_seconds: float) -> None:
    states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(summary.states.items()))
    console.print(f"\n[bold]Study {summary.name}[/] finished in {wall_seconds:.1f} s: {states}")
    if summary.best is None:
        console.print("No trial completed; `hpo best` will have nothing to show.")
        return
    print_trial(summary.best, title=f"Best trial ({summary.direction})")


def print_trial(trial: Any, *, title: str) -> None:
    details = trial_details(trial)
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("trial", str(details["number"]))
    table.add_row("value", _fmt(details["value"]))
    test = details["user_attrs"].get("test_accuracy")
    if test is not None:
        table.add_row("test accuracy", _fmt(test))
    for key, value in details["params"].items():
        table.add_row(f"param {key}", _fmt(value))
    for key, value in details["user_attrs"].items():
        if key != "test_accuracy":
            table.add_row(f"attr {key}", _fmt(value))
    console.print(table)


def print_studies(summaries: list[StudySummary], storage_shown: str) -> None:
    if not summaries:
        console.print(f"No studies in {storage_shown} yet; start one with `hpo launch study FILE`.")
        return
    table = Table(title=f"Studies in {storage_shown}", title_justify="left")
    for column in (
        "study",
        "model",
        "direction",
        "budget",
        "complete",
        "pruned",
        "fail",
        "running",
        "waiting",
        "best",
    ):
        table.add_column(column, justify="left" if column in ("study", "model") else "right")
    for s in summaries:
        table.add_row(
            s.name,
            s.model or "-",
            s.direction,
            _fmt(s.budget) if s.budget else "-",
            *(
                str(s.states.get(k, 0))
                for k in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
            ),
            "-" if s.best_value is None else f"{s.best_value:.4f}",
        )
    console.print(table)
