"""Rebuild a replayed reference (docs/results/fashion-mnist-replay/) from the data beside it.

    python3 docs/results/replay_reference.py FOLDER

FOLDER holds the study file (one *.toml), the table `hpo record` wrote (table.db) and one
replay per simulated worker count W: wW/runs.csv, written by
`hpo compare FILE --replay table.db --workers W --out wW`. This checks that the table still
replays to those rows (the first seed of every arm whose sampler is cheap to replay: the
simulator is deterministic), then writes summary.md and README.md (FOLDER/about.md with
its `<!-- results -->` line replaced by the results): per W, the comparison report's own
table (compute to target with its bootstrap CI, p-values, ...; docs/results/readme.py
lays it out) and the wall time to target on the simulated clock. No training, no replay
of the slow arms: tests/hpo/compare/test_results.py runs it in a copy and diffs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from readme import MARKER, about_of, spec_of  # beside this file: a script's folder is on sys.path

CHECKED_SAMPLERS = ("random", "tpe", "qmc")  # replayed again in seconds; gp takes minutes


def replays(folder: Path) -> dict[int, list]:
    """The rows of each wW/runs.csv, by W, in increasing W."""
    from hpo.compare.runs import read_runs

    found = {}
    for path in folder.glob("w*/runs.csv"):
        match = re.fullmatch(r"w(\d+)", path.parent.name)
        if match:
            found[int(match[1])] = read_runs(path)
    if not found:
        raise SystemExit(f"{folder}: no wW/runs.csv (W: simulated workers)")
    return dict(sorted(found.items()))


def check_rows(folder: Path, spec: object, workers: int, rows: list) -> None:
    """Stop unless seed 0 of every cheap arm replays to exactly the committed rows."""
    from hpo.compare.replay import replay_rows
    from hpo.compare.run import plan_comparison
    from hpo.compare.table import read_table

    table = read_table(folder / "table.db")
    trials = max(r.trial for r in rows) + 1
    for arm in dict.fromkeys(r.arm for r in rows):
        if arm.partition("+")[0] not in CHECKED_SAMPLERS:
            continue
        plan = plan_comparison(spec, arm, seeds=1, trials=trials)  # type: ignore[arg-type]
        again = replay_rows(table, plan, spec, workers=workers)  # type: ignore[arg-type]
        committed = [r for r in rows if r.arm == arm and r.seed == 0]
        if again != committed:
            raise SystemExit(f"w{workers}/runs.csv: {arm} seed 0 is not what the table replays to")


def stats_of(spec: object, rows: list) -> object:
    from hpo.compare.analyze import analyze
    from hpo.compare.run import plan_comparison
    from hpo.compare.runs import comparison_from_rows

    arms = ",".join(dict.fromkeys(r.arm for r in rows))
    trials = max(r.trial for r in rows) + 1
    plan = plan_comparison(spec, arms, seeds=1, trials=trials)  # type: ignore[arg-type]
    comparison = comparison_from_rows(
        rows,
        group=spec.name,  # type: ignore[attr-defined]
        direction=spec.direction,  # type: ignore[attr-defined]
        metric=spec.metric,  # type: ignore[attr-defined]
        budget=trials,
        spec={},
        pruners={a.label: a.pruner for a in plan.arms},
    )
    return analyze(comparison)


def wall_table(stats: object, rows: list) -> str:
    """Wall time on the simulated clock until the baseline's median final best."""
    from hpo.compare.report import compute_cell, fraction_cell
    from hpo.compare.walltime import wall_fractions, wall_to_target

    per_arm = wall_to_target(rows, stats.target, stats.comparison.direction)  # type: ignore[attr-defined]
    baseline = stats.baseline  # type: ignore[attr-defined]
    fractions = wall_fractions(per_arm, baseline)
    arms = list(per_arm)
    cells = [compute_cell(per_arm[a].median, per_arm[a].reached, per_arm[a].studies) for a in arms]
    versus = [
        "baseline"
        if a == baseline
        else fraction_cell(fractions[a], per_arm[a].reached, per_arm[a].studies)
        for a in arms
    ]
    return "\n".join(
        [
            "| | " + " | ".join(arms) + " |",
            "|---|" + "---|" * len(arms),
            "| wall time to target, median over seeds [95% CI] | " + " | ".join(cells) + " |",
            f"| wall time vs {baseline} [95% CI] | " + " | ".join(versus) + " |",
        ]
    )


def section(spec: object, workers: int, rows: list) -> str:
    from readme import results_table

    from hpo.compare.report import headline_compute

    stats = stats_of(spec, rows)
    seeds = len({r.seed for r in rows})
    trials = max(r.trial for r in rows) + 1
    plural = "s" if workers > 1 else ""
    return "\n\n".join(
        [
            f"### {workers} simulated worker{plural}: {seeds} seeds x {trials} trials an arm",
            headline_compute(stats),  # type: ignore[arg-type]
            results_table(stats),
            wall_table(stats, rows),
        ]
    )


def table_facts(folder: Path) -> str:
    from hpo.compare.table import read_table

    table = read_table(folder / "table.db")
    runs = sum(len(r) for r in table.runs.values())
    keys = ("dataset", "split", "epochs", "repeats", "machine", "device", "torch_version")
    facts = "; ".join(f"{k} {table.meta[k]}" for k in keys if k in table.meta)
    return f"The table: {len(table.configs)} configurations, {runs} recorded runs; {facts}."


def main(folder: Path) -> None:
    about = about_of(folder)
    spec = spec_of(folder)
    sections = []
    for workers, rows in replays(folder).items():
        check_rows(folder, spec, workers, rows)
        sections.append(section(spec, workers, rows))
    results = "\n\n".join([table_facts(folder), *sections])
    title = f"# {spec.name}: replayed comparison"  # type: ignore[attr-defined]
    (folder / "summary.md").write_text(f"{title}\n\n{results}\n", encoding="utf-8")
    (folder / "README.md").write_text(about.replace(MARKER, results), encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python3 docs/results/replay_reference.py FOLDER")
    main(Path(sys.argv[1]).resolve())
