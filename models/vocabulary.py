"""The names a search space may use for the built-in models: torch-free.

hpo validates study files against these without importing torch (a typo in a study file
is refused at once). The layer factories in `models.layers` and `create_model` map each
name to a module; a test checks that both sides name the same things.
"""

from __future__ import annotations

MODEL_NAMES: tuple[str, ...] = ("cnn", "mlp", "resnet")  # sorted, as list_models() gives them
# The searchable keyword arguments of create_model (all but name, in_shape, num_outputs).
MODEL_KEYS = frozenset(
    {"depth", "width", "activation", "init", "dropout", "batchnorm", "skip", "pool", "kernel"}
)
ACTIVATION_NAMES: tuple[str, ...] = (
    "relu",
    "leaky_relu",
    "elu",
    "gelu",
    "silu",
    "swish",
    "tanh",
    "sigmoid",
)
INITS: tuple[str, ...] = (
    "default",  # PyTorch's own (Kaiming-uniform with a=sqrt(5) for linear/conv): left untouched
    "xavier_uniform",  # Glorot & Bengio 2010, variance 2 / (fan_in + fan_out), times gain^2
    "xavier_normal",
    "he_uniform",  # He et al. 2015, variance gain^2 / fan_in: keeps ReLU activations' scale
    "he_normal",
    "orthogonal",  # Saxe et al. 2014, orthogonal matrix times gain
    "naive_normal",  # N(0, 1) regardless of fan-in: deliberately bad, explodes with depth
)
SKIPS: tuple[str, ...] = ("none", "residual", "highway")
POOL_NAMES: tuple[str, ...] = ("max", "avg")
KERNELS: tuple[int, ...] = (3, 5)  # odd sizes only, so padding k // 2 keeps the map's size
