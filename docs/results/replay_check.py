"""Rebuild the simulator check (docs/results/replay-check/) from the data beside it.

    python3 docs/results/replay_check.py FOLDER

FOLDER holds the study file (one *.toml), the recorded table (table.db), the live
comparison's runs.csv (live/runs.csv, written by `hpo report` from studies.db) and the
replay's (replay/runs.csv, written by `hpo compare --replay`). This replays the live arms
and seeds against the table again (no training; the simulator is deterministic) and stops
if that differs from replay/runs.csv, then writes summary.md (both sides per arm and per
seed) and README.md (FOLDER/about.md with its `<!-- results -->` line replaced by the
side-by-side table). tests/hpo/compare/test_results.py runs it in a copy and diffs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from readme import MARKER, about_of, spec_of  # beside this file: a script's folder is on sys.path


def replayed_again(folder: Path, spec: object, live: list) -> list:
    """The rows `hpo compare --replay` gives for the live arms, seeds and budget."""
    from hpo.compare.replay import replay_rows
    from hpo.compare.run import plan_comparison
    from hpo.compare.table import read_table

    arms = list(dict.fromkeys(r.arm for r in live))
    seeds = len({r.seed for r in live})
    plan = plan_comparison(spec, ",".join(arms), seeds=seeds, trials=None)  # type: ignore[arg-type]
    return replay_rows(read_table(folder / "table.db"), plan, spec, workers=1)  # type: ignore[arg-type]


def table_facts(folder: Path) -> str:
    from hpo.compare.table import read_table

    table = read_table(folder / "table.db")
    keys = ("dataset", "split", "epochs", "repeats", "grid", "machine", "device")
    facts = ", ".join(f"{k} {table.meta[k]}" for k in keys if k in table.meta)
    return f"{len(table.configs)} configurations recorded ({facts})."


def main(folder: Path) -> None:
    from hpo.compare.agreement import agreement
    from hpo.compare.agreement_report import agreement_headline, agreement_table, per_seed_table
    from hpo.compare.runs import read_runs

    about = about_of(folder)
    spec = spec_of(folder)
    live = read_runs(folder / "live" / "runs.csv")
    replay = read_runs(folder / "replay" / "runs.csv")
    if replayed_again(folder, spec, live) != replay:
        raise SystemExit(f"{folder / 'replay' / 'runs.csv'} is not what the table replays to")
    result = agreement(live, replay, direction=spec.direction)
    headline = agreement_headline(result)
    table = agreement_table(result, spec.metric)
    summary = "\n\n".join(
        [
            f"# {spec.name}: live comparison and its replay, side by side",
            headline,
            table,
            "## Per seed (seed k: the same sampler seed live and replayed)",
            per_seed_table(result),
            "## The table",
            table_facts(folder),
        ]
    )
    (folder / "summary.md").write_text(summary + "\n", encoding="utf-8")
    (folder / "README.md").write_text(
        about.replace(MARKER, f"{headline}\n\n{table}"), encoding="utf-8"
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python3 docs/results/replay_check.py FOLDER")
    main(Path(sys.argv[1]).resolve())
