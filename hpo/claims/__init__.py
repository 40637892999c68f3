"""The lectures' claims, reproduced: fixed training runs, stored, judged against the claim.

`hpo claims` trains each claim's runs (one study per claim, one trial per run, several
seeds), reads them back and states, from the numbers, where the data agree with the
claim and where they do not. The parts, in the order data flows through them:

- experiments.py  each claim as a grid of fixed run configurations x seeds
- run.py          training the runs in this process; one add_trial per finished run
- load.py         reading the claims' studies back as plain data
- analyze.py      pure: each claim's verdict, checks, table and figure data, in order
- batchnorm.py    the checks of claims 1 and 4 (BatchNorm: speed, higher learning rates)
- depth.py        the checks of claims 2 and 3 (gradients and activations across depth)
- dropout.py      the checks of claim 5 (dropout as regularisation)
- numbers.py      small pure functions over the seeds' numbers: medians, bands, slopes
- thresholds.py   every threshold the checks compare with, in one place
- results.py      what the analysis hands to rendering: checks, panels, a claim's result
- figures.py      plotly and matplotlib figures of those
- report.py       rendering: progress lines, verdicts, Markdown, HTML, the files
- publish.py      notes, figures and files to optuna-dashboard
- service.py      what the command calls: the steps above in order
"""

from __future__ import annotations

from hpo.claims.service import build_report, claims_command

__all__ = ["build_report", "claims_command"]
