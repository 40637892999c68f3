"""Comparisons of search strategies: which arm wins, by how much compute, how surely.

An *arm* is a sampler with a pruner (`random`, `tpe+hyperband`). `hpo compare FILE` runs
one study per (arm, seed); `hpo report GROUP` reads them back and renders the statistics,
led by the training compute each arm needs to reach the baseline's median final best.
The parts, in the order data flows through them:

- run.py      arms (sampler + pruner) x seeds derived from a study file; running them
- table.py    a recorded table of learning curves (SQLite): schema, write, read, lookup
- record.py   `hpo record`: the configurations, their repeat studies, the table from them
- simulator.py  one arm's study replayed against a table with W simulated workers
- replay.py   `hpo compare --replay`: every arm x seed replayed, runs.csv, the report
- runs.py     DIR/runs.csv, written by every compare; a replay's report is built from it
- walltime.py  wall time to target from runs.csv's clock (W workers): pure
- agreement.py  a live comparison against its replay, arm by arm, from two runs.csv: pure
- agreement_report.py  that agreement as Markdown, live and replay side by side
- load.py     reading a comparison back from the storage as plain data (a multi-objective
              one as the hypervolume of each study's feasible front so far)
- hypervolume.py  that hypervolume and its reference point: pure
- stats.py    the statistics: pure functions of numbers
- analyze.py  a comparison -> its statistics (ComparisonStats)
- figures.py  plotly and matplotlib figures of those statistics
- pareto.py   the Pareto fronts of a multi-objective comparison, as a PNG
- report.py   rendering: progress lines, terminal table, Markdown, HTML, the files
- publish.py  notes, figures and files to optuna-dashboard
- service.py  what the commands call: the steps above in order
"""

from __future__ import annotations

from hpo.compare.service import build_report, compare_file, report_group

__all__ = ["build_report", "compare_file", "report_group"]
