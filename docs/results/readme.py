"""Rebuild a comparison's reference folder from the studies beside it, with no training.

    python3 docs/results/readme.py FOLDER GROUP     # a comparison (`hpo compare`)
    python3 docs/results/readme.py FOLDER claims    # the lectures' claims (`hpo claims`)

reads FOLDER/studies.db (the SQLite file the runs were stored in), rewrites the report
files (what `hpo report GROUP` or `hpo claims --report-only` write: summary.md,
report.html, PNGs) and FOLDER/README.md: FOLDER/about.md (the prose: what was run, how, on
which machine; no figure in it) with its `<!-- results -->` line replaced by results
computed from the studies (a comparison: the table below; the claims: summary.md's
verdict table). Each folder's `rebuild` script calls this;
tests/hpo/compare/test_results.py runs every one in a copy and diffs.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

MARKER = "<!-- results -->"


def about_of(folder: Path) -> str:
    """FOLDER/about.md, the page's prose, which must hold the results marker once."""
    about = (folder / "about.md").read_text(encoding="utf-8")
    if about.count(MARKER) != 1:
        raise SystemExit(f"{folder / 'about.md'}: needs one line {MARKER}")
    return about


def spec_of(folder: Path) -> object:
    """The study file beside the data: exactly one *.toml in FOLDER."""
    from hpo.config.spec import load_spec

    tomls = sorted(folder.glob("*.toml"))
    if len(tomls) != 1:
        raise SystemExit(f"{folder}: needs exactly one study file (*.toml), found {len(tomls)}")
    return load_spec(tomls[0])


def study_rows(stats: object) -> list[list[str]]:
    """Per arm: whole-study training seconds, trial states and trial seconds, from the
    trials themselves (what the Fashion-MNIST page once read with a snippet by hand)."""
    from hpo.compare.analyze import ComparisonStats

    assert isinstance(stats, ComparisonStats)
    rows = []
    for arm in stats.comparison.arms:
        runs = stats.comparison.runs_of(arm)
        totals = [sum(t.compute for t in r.trials) for r in runs]
        trials = [t for r in runs for t in r.trials]
        states = [sum(t.state == s for t in trials) for s in ("COMPLETE", "PRUNED", "FAIL")]
        rows.append(
            [
                f"{statistics.median(totals):.0f}",
                " / ".join(str(n) for n in states),
                f"{statistics.median(t.compute for t in trials):.2f}",
            ]
        )
    return rows


def results_table(stats: object) -> str:
    """The arms side by side: the report's own cells (hpo.compare.report.summary_rows),
    then what the trials say about cost."""
    from hpo.compare.analyze import ComparisonStats
    from hpo.compare.report import HEADERS, summary_rows

    assert isinstance(stats, ComparisonStats)
    rows = summary_rows(stats)
    per_study = study_rows(stats)
    budget = stats.comparison.budget
    seeds = max(s.studies for s in stats.arms)
    names = {
        "compute to target [95% CI]": "compute to target, median over seeds [95% CI]",
        "compute vs base [95% CI]": f"compute vs {stats.baseline} [95% CI]",
        "seeds at target": f"seeds reaching the target ({stats.target:.4f})",
        "trials to target": "trials until the median curve reaches the target",
        "median final best [95% CI]": f"median final best {stats.comparison.metric} [95% CI]",
        "Mann-Whitney p": f"Mann-Whitney p vs {stats.baseline}",
    }
    lines = [
        "| | " + " | ".join(f"{row[0]}" for row in rows) + " |",
        "|---|" + "---|" * len(rows),
    ]
    for i, header in enumerate(HEADERS):
        if header in names:
            lines.append(f"| {names[header]} | " + " | ".join(row[i] for row in rows) + " |")
    extra = [
        f"training seconds of a whole {budget}-trial study (median over seeds)",
        f"complete / pruned / failed trials ({seeds} studies)",
        "median training seconds of a trial",
    ]
    for j, label in enumerate(extra):
        lines.append(f"| {label} | " + " | ".join(r[j] for r in per_study) + " |")
    return "\n".join(lines)


def comparison_results(storage: object, group: str, folder: Path) -> str:
    from hpo.compare import build_report
    from hpo.compare.report import headline_compute

    built = build_report(storage, group, folder)  # type: ignore[arg-type]
    return f"{headline_compute(built.stats)}\n\n{results_table(built.stats)}"


def claims_results(storage: object, folder: Path) -> str:
    """The verdict table of the claims' summary.md, as the report wrote it."""
    from hpo.claims.service import build_report

    built = build_report(storage, "full", folder)  # type: ignore[arg-type]
    summary = (folder / "summary.md").read_text(encoding="utf-8")
    start = summary.index("| claim | verdict |")
    end = summary.find("\n\n", start)
    del built
    return summary[start : end if end >= 0 else None]


def main(folder: Path, group: str) -> None:
    from hpo.storage.open import open_storage

    about = about_of(folder)
    storage = open_storage(f"sqlite:///{folder / 'studies.db'}")
    if group == "claims":
        results = claims_results(storage, folder)
    else:
        results = comparison_results(storage, group, folder)
    (folder / "README.md").write_text(about.replace(MARKER, results), encoding="utf-8")
    storage.engine.dispose()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python3 docs/results/readme.py FOLDER GROUP")
    main(Path(sys.argv[1]).resolve(), sys.argv[2])
