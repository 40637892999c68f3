"""report: showing studies to people; computing nothing about them.

Owns terminal rendering (console: progress bar or lines, tables), serving optuna-dashboard
(dashboard) and what every report shares (shared: report folders, palette, Markdown tables,
plotly.js beside a page, a study's report artifacts). compare/ and claims/ are feature
packages beside it that build their reports with it.

May import: hpo.errors, hpo.config, hpo.storage, hpo.study.
"""
