"""hpo: hyperparameter optimization service for deep networks, built on Optuna."""

__version__ = "0.1.0"
