"""Does a new run of the benchmarks match the committed figures within their spread?

Every benchmark prints its headline figures as lines

    figure: NAME median=M min=A max=B n=K [UNIT]
    figure: NAME count=C

(`_machine.figure`: K rounds or pairs, A..B their spread; `_machine.count`: a count).
This reads those lines from the committed raw outputs (benchmarks/results/*.txt) and
from a new run's folder, and judges each figure present in both:

- a count (lost trials, connections of a worker) must be equal;
- a measured figure matches when either run's median lies within the other's spread
  (min..max over its rounds): neither run's centre is outside what the other saw.

    python3 benchmarks/check_figures.py NEW_DIR [--committed benchmarks/results]
    python3 benchmarks/check_figures.py --table   # the committed figures as BENCHMARKS.md
                                                  # quotes them (a test compares the two)

Exits 1 when a figure differs or a committed figure is missing from the new run.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

FIGURE = re.compile(
    r"^figure: (?P<name>.+?) (?:none|count=(?P<count>\S+)|median=(?P<median>\S+) "
    r"min=(?P<low>\S+) max=(?P<high>\S+) n=(?P<n>\d+))(?: (?P<unit>\S+))?$"
)


@dataclass(frozen=True)
class Figure:
    median: float
    low: float
    high: float
    n: int  # 0: a count
    unit: str = ""

    @property
    def is_count(self) -> bool:
        return self.n == 0

    def shown(self) -> str:
        spread = "" if self.is_count else f" ({self.low:.4g}-{self.high:.4g}, n={self.n})"
        return f"{self.median:.4g}{spread}{' ' + self.unit if self.unit else ''}"


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


def provenance(folder: Path) -> list[str]:
    """What run_all.sh wrote about its run (commit, times, machine), as markdown lines."""
    path = folder / "run.txt"
    if not path.exists():
        return []
    keep = ("commit:", "started:", "finished:", "machine:", "python ")
    lines = [line for line in path.read_text().splitlines() if line.startswith(keep)]
    return [f"- {line}" for line in lines] + [""]


def table(figures: dict[str, Figure], about: list[str] | None = None) -> str:
    """The figures as a markdown table, in the order the raw outputs hold them, after the
    run's provenance lines."""
    lines = [*(about or []), "| raw output | figure | median | spread (rounds) |"]
    lines.append("|---|---|---:|---|")
    for key, figure in figures.items():
        source, name = key.split(": ", 1)
        value = f"{figure.median:.4g}{' ' + figure.unit if figure.unit else ''}"
        spread = "count" if figure.is_count else f"{figure.low:.4g}-{figure.high:.4g} ({figure.n})"
        lines.append(f"| {source} | {name} | {value} | {spread} |")
    return "\n".join(lines) + "\n"


def matches(committed: Figure, new: Figure) -> bool:
    if committed.is_count or new.is_count:
        return committed.is_count and new.is_count and committed.median == new.median
    return committed.low <= new.median <= committed.high or new.low <= committed.median <= new.high


def verdicts(committed: dict[str, Figure], new: dict[str, Figure]) -> list[tuple[str, str]]:
    """(name, verdict) for every committed figure: `ok`, `DIFFERS` or `MISSING`."""
    out = []
    for name, figure in committed.items():
        if name not in new:
            out.append((name, "MISSING"))
        else:
            out.append((name, "ok" if matches(figure, new[name]) else "DIFFERS"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("new", type=Path, nargs="?", help="folder of the new run's raw outputs")
    parser.add_argument(
        "--committed", type=Path, default=Path(__file__).resolve().parent / "results"
    )
    parser.add_argument("--table", action="store_true", help="print the committed figures")
    args = parser.parse_args()
    committed = read_figures(args.committed)
    if not committed:
        sys.exit(f"no figure lines in {args.committed}")
    if args.table:
        print(table(committed, provenance(args.committed)), end="")
        return
    if args.new is None:
        parser.error("give NEW_DIR (a run's output folder) or --table")
    new = read_figures(args.new)
    results = verdicts(committed, new)
    width = max(len(name) for name, _ in results)
    for name, verdict in results:
        got = new[name].shown() if name in new else "-"
        print(f"{verdict:<8} {name:<{width}}  committed {committed[name].shown()}, new {got}")
    bad = sum(verdict != "ok" for _, verdict in results)
    print(f"{len(results) - bad} of {len(results)} figures match the committed ones")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
