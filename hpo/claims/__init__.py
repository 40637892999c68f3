"""The lectures' claims, reproduced: fixed training runs, stored, judged against the claim.

`hpo claims` trains each claim's runs (one study per claim, one trial per run, several
seeds), reads them back and states, from the numbers, where the data agree with the
claim and where they do not. The parts, in the order data flows through them:

- experiments.py  each claim as a grid of fixed run configurations x seeds
- run.py          training the runs in this process; one add_trial per finished run
- load.py         reading the claims' studies back as plain data
- analyze.py      pure: the checks, verdicts, tables and figure data of each claim
- figures.py      plotly and matplotlib figures of those
- report.py       rendering: progress lines, verdicts, Markdown, HTML, the files
- publish.py      notes, figures and files to optuna-dashboard
- service.py      what the command calls: the steps above in order
"""

from __future__ import annotations

from hpo.claims.service import build_report, claims_command

__all__ = ["build_report", "claims_command"]
