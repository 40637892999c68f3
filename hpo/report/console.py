"""Terminal rendering of launches and studies (rich). Data comes in ready-made."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from hpo.study.progress import Pace, StudyProgress, pace
from hpo.study.summary import StudySummary, trial_details

# Piped output (CI logs, files) gets a wide table instead of rich's 80-column default.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def visible(text: str) -> str:
    """`text` with every non-printable character shown as its escape (`\\x1b`, `\\n`): a
    name or attr from a study file or the storage never moves the cursor or retitles the
    terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def literal(value: Any) -> str:
    """Free text (names, params, attrs) as rich markup that prints it as written: control
    characters escaped, and '[' escaped so that `evil[/]` is not read as a tag."""
    return escape(visible(_fmt(value)))


def setup_logging(*, quiet: bool = False) -> None:
    """Worker logs on stderr: one line per trial, or only warnings when quiet."""
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def progress_fields(snapshot: StudyProgress, rate: Pace) -> dict[str, str]:
    """The texts a progress display shows beside the count."""
    return {
        "best": _best_field(snapshot),
        "rate": "-" if rate.per_minute is None else f"{rate.per_minute:.1f}",
        "left": _duration(rate.seconds_left),
    }


class LaunchProgress:
    """Progress of one launch: a live bar on a terminal, one line per change when piped.

    Use as a context manager; `start` prints the launch's header, calling the object with
    a StudyProgress updates the display. Only finished trials count, and the best value is
    taken from the same snapshot as the count.
    """

    def __init__(self, storage_shown: str, *, live: bool | None = None) -> None:
        self.storage_shown = storage_shown
        self.live = console.is_terminal if live is None else live
        self.name = ""
        self.started = time.monotonic()
        self.first_finished: int | None = None
        self.last: tuple[int, float | None, int | None] | None = None
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> LaunchProgress:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def start(self, spec: Any, plans: list[Any], _study: Any) -> None:
        self.name = literal(spec.name)
        gpus = sorted({p.gpu for p in plans if p.gpu is not None})
        where = f" on GPU {','.join(map(str, gpus))}" if gpus else ""
        console.print(
            f"study {self.name} in {literal(self.storage_shown)}: {len(plans)} worker(s){where}, "
            f"sampler {spec.sampler.name}, pruner {spec.pruner.name}",
            soft_wrap=True,
        )
        self.started = time.monotonic()
        if self.live:
            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("trials  best {task.fields[best]}"),
                TextColumn("{task.fields[rate]} trials/min"),
                TextColumn("{task.fields[left]} left"),
                console=console,
            )
            self.bar.start()

    def __call__(self, snapshot: StudyProgress) -> None:
        if self.first_finished is None:
            self.first_finished = snapshot.finished
        fields = progress_fields(
            snapshot, pace(self.first_finished, snapshot, time.monotonic() - self.started)
        )
        if self.bar is not None:
            if self.task is None:
                self.task = self.bar.add_task(self.name, total=snapshot.target, **fields)
            self.bar.update(self.task, completed=snapshot.finished, total=snapshot.target, **fields)
            return
        key = (snapshot.finished, snapshot.best, snapshot.front)
        if key == self.last:
            return
        self.last = key
        console.print(
            f"[bold]{self.name}[/]  {snapshot.finished}/{snapshot.target} trials  "
            f"best {fields['best']}  {fields['rate']} trials/min  {fields['left']} left",
            soft_wrap=True,
        )
        sys.stdout.flush()


def print_summary(summary: StudySummary, wall_seconds: float) -> None:
    states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(summary.states.items()))
    console.print(
        f"\n[bold]Study {literal(summary.name)}[/] finished in {wall_seconds:.1f} s: {states}"
    )
    if summary.stopped:
        print_stopped(summary.name, summary.stopped)
    if summary.multi_objective and summary.front:
        _front_table(summary.name, summary.metrics, list(summary.front))
        return
    if summary.best is None:
        console.print("No trial completed; `hpo best` will have nothing to show.")
        return
    print_trial(summary.best, title=f"Best trial ({summary.direction})")


def print_stopped(name: str, reason: str) -> None:
    """One line saying that a study stopped before its budget, and why."""
    console.print(f"Study {literal(name)} {literal(reason)}")


def print_trial(trial: Any, *, title: str, show_all: bool = False) -> None:
    """A trial as a two-column table; diagnostics and list-valued attrs only with show_all."""
    details = trial_details(trial, all_attrs=show_all)
    table = Table(title=literal(title), show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("trial", str(details["number"]))
    table.add_row("value", literal(details["value"]))
    test = details["user_attrs"].get("test_accuracy")
    if test is not None:
        table.add_row("test accuracy", literal(test))
    for key, value in details["params"].items():
        table.add_row(f"param {literal(key)}", literal(value))
    for key, value in details["user_attrs"].items():
        if key != "test_accuracy":
            table.add_row(f"attr {literal(key)}", literal(value))
    console.print(table)


def print_studies(summaries: list[StudySummary], storage_shown: str) -> None:
    if not summaries:
        console.print(
            f"No studies in {literal(storage_shown)} yet; start one with `hpo launch study FILE`."
        )
        return
    table = Table(title=f"Studies in {literal(storage_shown)}", title_justify="left")
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
            literal(s.name),
            literal(s.model or "-"),
            s.direction,
            _fmt(s.budget) if s.budget else "-",
            *(
                str(s.states.get(k, 0))
                for k in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
            ),
            _best_cell(s),
        )
    console.print(table)
    for s in summaries:
        if s.stopped:
            print_stopped(s.name, s.stopped)


def _best_cell(s: StudySummary) -> str:
    """The best value, or the size of a multi-objective study's Pareto front."""
    if s.multi_objective:
        return f"front of {len(s.front)}"
    return "-" if s.best_value is None else f"{s.best_value:.4f}"


def print_front(study: Any, trials: list[Any]) -> None:
    """`hpo best` of a multi-objective study: its feasible Pareto front as a table."""
    from hpo.study.front import metric_names

    _front_table(study.study_name, metric_names(study), trials)


def _front_table(name: str, metrics: tuple[str, ...], trials: list[Any]) -> None:
    from hpo.study.front import front_rows

    rows = front_rows(trials, metrics)
    params = sorted({key for row in rows for key in row.params})
    table = Table(
        title=f"Pareto front of {literal(name)}: {len(rows)} trial(s), feasible only",
        title_justify="left",
    )
    for column in ("trial", *metrics, "test accuracy", *params):
        table.add_column(literal(column), justify="right")
    for row in rows:
        table.add_row(
            str(row.number),
            *(_metric_cell(metric, row.values[metric]) for metric in metrics),
            "-" if row.test_accuracy is None else f"{row.test_accuracy:.4f}",
            *(literal(row.params[key]) if key in row.params else "-" for key in params),
        )
    console.print(table)


def _metric_cell(metric: str, value: float) -> str:
    if metric == "params":
        return f"{int(value):,}"
    return f"{value:.4f}"


def _best_field(snapshot: StudyProgress) -> str:
    """The best value so far, or a multi-objective study's front size."""
    if snapshot.front is not None:
        return f"front of {snapshot.front}"
    return "-" if snapshot.best is None else f"{snapshot.best:.4f}"
