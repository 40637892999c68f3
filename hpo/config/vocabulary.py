"""The names a study file may use beyond the models' own (models.vocabulary): data sets,
optimizers, schedules, augmentations, samplers and pruners.

Torch-free and Optuna-free, so a study file is validated without either; the modules that
act on each name (training.data, training.loop, study.samplers) import them from here.
"""

from __future__ import annotations

DATASETS: tuple[str, ...] = ("digits", "rings", "mnist", "fashion-mnist", "cifar10")
# A user's own data, read from `[data] path` (hpo.config.data, hpo.training.userdata).
USER_DATASETS: tuple[str, ...] = ("folder", "npz", "csv")
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "adamw")
SCHEDULES: tuple[str, ...] = ("none", "step", "cosine")
AUGMENTS: tuple[str, ...] = ("none", "crop_flip")
SAMPLERS: tuple[str, ...] = ("random", "tpe", "qmc", "gp", "nsga2")
PRUNERS: tuple[str, ...] = ("none", "median", "hyperband", "sha")  # sha: asynchronous halving
