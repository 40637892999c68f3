"""Does a new run of the benchmarks match the committed figures within their spread?

Every benchmark prints its headline figures as lines

    figure: NAME median=M min=A max=B n=K [UNIT]
    figure: NAME count=C

(`_machine.figure`: K rounds or pairs, A..B their spread; `_machine.count`: a count).
The committed figures are several whole runs of `run_all.sh --update` on one machine
(benchmarks/results/run-1, run-2, ...), pooled: a figure's median is the middle of the
runs' medians and its spread runs from the lowest to the highest round of any run, so it
holds what changes from one run to the next (the machine's load, its caches), not only
from one round to the next. A new run's folder is judged figure by figure:

- a count (lost trials, connections of a worker) must be equal;
- a measured figure matches when either side's median lies within the other's spread;
- a time (seconds, ms a trial, trials/s) is judged only on the machine the committed
  runs came from (the same cores, CPU model and GPU): on another one it is listed, not
  judged. Ratios, counts and accuracies are judged everywhere.

    python3 benchmarks/check_figures.py NEW_DIR [--committed benchmarks/results]
    python3 benchmarks/check_figures.py --table     # the pooled committed figures, as
                                                    # BENCHMARKS.md quotes them (a test
                                                    # compares the two)
    python3 benchmarks/check_figures.py --can-add   # may this machine add a committed run?

Exits 1 when a judged figure differs or a committed figure is missing from the new run.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

FIGURE = re.compile(
    r"^figure: (?P<name>.+?) (?:none|count=(?P<count>\S+)|median=(?P<median>\S+) "
    r"min=(?P<low>\S+) max=(?P<high>\S+) n=(?P<n>\d+))(?: (?P<unit>\S+))?$"
)
# Units of figures that are times on this machine: compared only between runs of one machine.
MACHINE_BOUND_UNITS = frozenset({"s", "ms/trial", "trials/s"})
RUN_FOLDER = re.compile(r"run-\d+")  # benchmarks/results/run-1, run-2, ...


@dataclass(frozen=True)
class Figure:
    median: float
    low: float
    high: float
    n: int  # 0: a count
    unit: str = ""
    runs: int = 1  # how many whole runs the figure pools

    @property
    def is_count(self) -> bool:
        return self.n == 0

    @property
    def is_machine_bound(self) -> bool:
        return self.unit in MACHINE_BOUND_UNITS

    def shown(self) -> str:
        spread = "" if self.is_count else f" ({self.low:.4g}-{self.high:.4g}, n={self.n})"
        return f"{self.median:.4g}{spread}{' ' + self.unit if self.unit else ''}"


@dataclass(frozen=True)
class Run:
    """One run's raw outputs: its figures and what run_all.sh wrote about it (run.txt)."""

    folder: Path
    about: list[str]  # run.txt's lines; [] if it has none
    figures: dict[str, Figure]

    def field(self, key: str) -> str:
        """The value of run.txt's `KEY: value` line ("" if absent)."""
        prefix = f"{key}: "
        return next((line.removeprefix(prefix).strip() for line in self.about
                     if line.startswith(prefix)), "")  # fmt: skip

    @property
    def machine(self) -> str:
        """Cores, CPU model and GPU, as the run's banner named them ("" if unrecorded)."""
        return self.field("machine")


def read_figures(folder: Path) -> dict[str, Figure]:
    """Every figure line of every raw output in `folder`, named `FILE: NAME`."""
    found: dict[str, Figure] = {}
    for path in sorted(folder.glob("*.txt")):
        for line in path.read_text(errors="replace").splitlines():
            match = FIGURE.match(line.strip())
            if match is None or (match["median"] is None and match["count"] is None):
                continue
            name = f"{path.stem}: {match['name']}"
            if match["count"] is not None:
                value = float(match["count"])
                found[name] = Figure(value, value, value, 0)
                continue
            found[name] = Figure(
                float(match["median"]),
                float(match["low"]),
                float(match["high"]),
                int(match["n"]),
                match["unit"] or "",
            )
    return found


def read_run(folder: Path) -> Run:
    about = folder / "run.txt"
    lines = about.read_text().splitlines() if about.exists() else []
    return Run(folder, lines, read_figures(folder))


def committed_runs(folder: Path) -> list[Run]:
    """The committed runs: each `run-N` folder in `folder`, or `folder` itself as one run."""
    nested = [p for p in folder.glob("run-*") if p.is_dir() and RUN_FOLDER.fullmatch(p.name)]
    nested.sort(key=lambda p: int(p.name.removeprefix("run-")))
    return [read_run(p) for p in nested] if nested else [read_run(folder)]


def pooled(runs: list[Run]) -> dict[str, Figure]:
    """Each figure over all `runs` (in the first run's order): the middle of their medians,
    the spread of all their rounds. A count that differs between runs becomes a measured
    figure, which no new count matches."""
    names = list(dict.fromkeys(name for run in runs for name in run.figures))
    out: dict[str, Figure] = {}
    for name in names:
        seen = [run.figures[name] for run in runs if name in run.figures]
        medians = [f.median for f in seen]
        if all(f.is_count for f in seen) and len(set(medians)) == 1:
            out[name] = seen[0]
            continue
        out[name] = Figure(
            statistics.median(medians),
            min(f.low for f in seen),
            max(f.high for f in seen),
            sum(max(f.n, 1) for f in seen),
            seen[0].unit,
            len(seen),
        )
    return out


def one_machine(runs: list[Run]) -> str:
    """The machine every committed run came from; exits with a clear line if they differ."""
    machines = sorted({run.machine for run in runs})
    if len(machines) > 1:
        sys.exit(
            "the committed runs come from different machines ("
            + "; ".join(m or "unrecorded" for m in machines)
            + "): keep one machine's runs in benchmarks/results/"
        )
    return machines[0] if machines else ""


def provenance(runs: list[Run]) -> list[str]:
    """What run_all.sh wrote about the runs (machine, software, each run's commit and
    times), as markdown lines."""
    lines: list[str] = []
    for run in runs:
        if not run.about:
            continue
        if not lines:
            lines += [f"- {line}" for line in run.about if line.startswith(("machine:", "python "))]
        commit, started, finished = (run.field(k) or "?" for k in ("commit", "started", "finished"))
        lines.append(
            f"- {run.folder.name}: commit {commit}, started {started}, finished {finished}"
        )
    return [*lines, ""] if lines else []


def table(figures: dict[str, Figure], about: list[str] | None = None) -> str:
    """The figures as a markdown table, in the order the raw outputs hold them, after the
    runs' provenance lines."""
    lines = [*(about or []), "| raw output | figure | median | spread (rounds, runs) |"]
    lines.append("|---|---|---:|---|")
    for key, figure in figures.items():
        source, name = key.split(": ", 1)
        value = f"{figure.median:.4g}{' ' + figure.unit if figure.unit else ''}"
        spread = (
            "count"
            if figure.is_count
            else f"{figure.low:.4g}-{figure.high:.4g} ({figure.n}, {figure.runs})"
        )
        lines.append(f"| {source} | {name} | {value} | {spread} |")
    return "\n".join(lines) + "\n"


def matches(committed: Figure, new: Figure) -> bool:
    if committed.is_count or new.is_count:
        return committed.is_count and new.is_count and committed.median == new.median
    return committed.low <= new.median <= committed.high or new.low <= committed.median <= new.high


def verdicts(
    committed: dict[str, Figure], new: dict[str, Figure], same_machine: bool = True
) -> list[tuple[str, str]]:
    """(name, verdict) for every committed figure: `ok`, `DIFFERS`, `MISSING`, or `machine`
    (a time measured on another machine: not judged)."""
    out = []
    for name, figure in committed.items():
        if name not in new:
            out.append((name, "MISSING"))
        elif figure.is_machine_bound and not same_machine:
            out.append((name, "machine"))
        else:
            out.append((name, "ok" if matches(figure, new[name]) else "DIFFERS"))
    return out


def committed_figures(folder: Path) -> tuple[list[Run], dict[str, Figure], str]:
    """The committed runs, their pooled figures and their one machine; exits with a clear
    line when there are no figures or the runs come from several machines."""
    runs = committed_runs(folder)
    figures = pooled(runs)
    if not figures:
        sys.exit(f"no figure lines in {folder}")
    return runs, figures, one_machine(runs)


def check(committed_folder: Path, new_folder: Path) -> int:
    """Print every verdict and a summary; the exit status (1 if a judged figure fails)."""
    runs, committed, machine = committed_figures(committed_folder)
    new = read_run(new_folder)
    same_machine = not machine or not new.machine or machine == new.machine
    results = verdicts(committed, new.figures, same_machine)
    width = max(len(name) for name, _ in results)
    for name, verdict in results:
        got = new.figures[name].shown() if name in new.figures else "-"
        print(f"{verdict:<8} {name:<{width}}  committed {committed[name].shown()}, new {got}")
    judged = [verdict for _, verdict in results if verdict != "machine"]
    bad = sum(verdict != "ok" for verdict in judged)
    print(
        f"{len(judged) - bad} of {len(judged)} judged figures match the committed ones "
        f"({len(runs)} run{'s' if len(runs) != 1 else ''} pooled)"
    )
    if not same_machine:
        print(
            f"{len(results) - len(judged)} times not judged: the committed runs ran on "
            f"{machine}, this one on {new.machine}"
        )
    return 1 if bad else 0


def can_add(committed_folder: Path, machine: str) -> int:
    """0 if a run on `machine` may join the committed runs (same machine, or none yet)."""
    runs = [run for run in committed_runs(committed_folder) if run.figures]
    theirs = one_machine(runs) if runs else ""
    if theirs and theirs != machine:
        print(
            f"benchmarks/results holds runs from {theirs}; this is {machine}. Figures of two "
            "machines do not pool: `git rm -r benchmarks/results/run-*` first, then run "
            "`bash benchmarks/run_all.sh --update` three times or more",
            file=sys.stderr,
        )
        return 2
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("new", type=Path, nargs="?", help="folder of the new run's raw outputs")
    parser.add_argument(
        "--committed", type=Path, default=Path(__file__).resolve().parent / "results"
    )
    parser.add_argument("--table", action="store_true", help="print the committed figures")
    parser.add_argument(
        "--can-add", action="store_true", help="exit 2 if this machine's runs may not join"
    )
    args = parser.parse_args()
    if args.can_add:
        import _machine

        sys.exit(can_add(args.committed, _machine.machine()))
    if args.table:
        runs, figures, _ = committed_figures(args.committed)
        print(table(figures, provenance(runs)), end="")
        return
    if args.new is None:
        parser.error("give NEW_DIR (a run's output folder), --table or --can-add")
    sys.exit(check(args.committed, args.new))


if __name__ == "__main__":
    main()
