"""hpo: hyperparameter optimization service for deep networks, built on Optuna.

One folder per layer (config, storage, study, training, runtime, report; compare and claims
beside them), each importing only the layers below it: docs/architecture.md.

Public API: `hpo.load_model(DIR)`, the model of an `hpo export` / `hpo retrain` folder
(hpo.training.export), loaded on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_model"]


def __getattr__(name: str) -> object:
    # Lazy, so `import hpo` (every command's start) does not load torch.
    if name == "load_model":
        from hpo.training.export import load_model

        return load_model
    raise AttributeError(f"module 'hpo' has no attribute {name!r}")
