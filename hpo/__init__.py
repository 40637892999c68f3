"""hpo: hyperparameter optimization service for deep networks, built on Optuna.

One folder per layer (config, storage, study, training, runtime, report; compare and claims
beside them), each importing only the layers below it: docs/architecture.md.
"""

__version__ = "0.1.0"
