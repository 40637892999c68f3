"""training: one trial, from its params to its value; no worker loop, no launching.

Owns the objective (trial -> params -> model -> fit -> value and user attrs), the training
loop (loop: no Optuna), data sets as tensors and the files they are read from (data,
datafiles), epoch checkpoints for retries to resume (checkpoint), layer diagnostics
(diagnostics) and the memory guard that refuses a trial too large before it is built
(memory; the guard runs inside each trial, so it lives here, reading the device share the
runtime sets); and the model a trial leaves: its file (modelfile), the best trials' weights
kept in the artifact store (keep), export folders and `hpo.load_model` (export), a final fit
on train + validation (retrain).

May import: hpo.errors, hpo.config, hpo.storage, hpo.study, models.
"""
