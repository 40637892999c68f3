"""Pure PyTorch models for hpo: MLP, CNN and ResNet built by name from plain hyperparameters.

No Optuna here: ``hpo.study.space`` turns a trial into a dict and calls
``create_model(**params)``. Own networks (a study's ``[model] entry``) use the same
vocabulary through ``create_act``, ``create_init``, ``create_norm`` and ``create_dropout``.

The public names load lazily, so that importing the torch-free
``models.vocabulary`` (what study files are validated against) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.config import ModelConfig
    from models.diagnostics import layer_stats
    from models.errors import ModelConfigError
    from models.layers import (
        ACTIVATIONS,
        POOLS,
        create_act,
        create_dropout,
        create_init,
        create_norm,
        init_weights,
    )
    from models.registry import MODELS, create_model, list_models
    from models.vocabulary import INITS, KERNELS, SKIPS

# public name -> the submodule that defines it
_HOMES = {
    "ModelConfig": "models.config",
    "layer_stats": "models.diagnostics",
    "ModelConfigError": "models.errors",
    "ACTIVATIONS": "models.layers",
    "INITS": "models.vocabulary",
    "KERNELS": "models.vocabulary",
    "POOLS": "models.layers",
    "SKIPS": "models.vocabulary",
    "create_act": "models.layers",
    "create_dropout": "models.layers",
    "create_init": "models.layers",
    "create_norm": "models.layers",
    "init_weights": "models.layers",
    "MODELS": "models.registry",
    "create_model": "models.registry",
    "list_models": "models.registry",
}
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
    "create_dropout",
    "create_init",
    "create_model",
    "create_norm",
    "init_weights",
    "layer_stats",
    "list_models",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
