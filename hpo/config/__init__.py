"""config: what a study file may say, and the settings every command shares.

Owns the study-file schema and its validation (spec; the search space in space, the shared
bounds and error reporter in rules), the names a study may use beyond the
models' own (vocabulary), the shared options and defaults (settings), and safe folder names
for user-given names (paths). Pure Python: no torch, no Optuna, so a bad study file is
refused, and `--help` answers, before either loads.

May import: hpo.errors, models.vocabulary (names only, torch-free).
"""
