"""Pure PyTorch models for hpo: MLP, CNN and ResNet built by name from plain hyperparameters.

No Optuna here: ``hpo.space`` turns a trial into a dict and calls ``create_model(**params)``.
"""

from __future__ import annotations

from models.config import ModelConfig
from models.diagnostics import layer_stats
from models.errors import ModelConfigError
from models.layers import ACTIVATIONS, INITS, KERNELS, POOLS, SKIPS, create_act, init_weights
from models.registry import MODELS, create_model, list_models

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "KERNELS",
    "MODELS",
    "POOLS",
    "SKIPS",
    "ModelConfig",
    "ModelConfigError",
    "create_act",
    "create_model",
    "init_weights",
    "layer_stats",
    "list_models",
]
