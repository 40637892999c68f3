"""create_model over the whole registry, and its errors."""

from __future__ import annotations

import itertools

import pytest
import torch

from models import (
    ACTIVATIONS,
    INITS,
    SKIPS,
    ModelConfig,
    ModelConfigError,
    create_model,
    list_models,
)

TINY = {"in_shape": (1, 8, 8), "num_outputs": 3, "depth": 3, "width": 4, "dropout": 0.1}

MATRIX = list(itertools.product(list_models(), sorted(ACTIVATIONS), INITS, [False, True], SKIPS))


def test_list_models() -> None:
    assert list_models() == ["cnn", "mlp", "resnet"]


@pytest.mark.parametrize(("name", "activation", "init", "batchnorm", "skip"), MATRIX)
def test_every_combination_builds_and_trains_one_step(
    name: str, activation: str, init: str, batchnorm: bool, skip: str
) -> None:
    torch.manual_seed(0)
    model = create_model(
        name, **TINY, activation=activation, init=init, batchnorm=batchnorm, skip=skip
    )
    x = torch.randn(4, *TINY["in_shape"])
    out = model(x)
    assert out.shape == (4, 3)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        # Every parameter is on the path to the output: no dead projection or gate layers.
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname


def test_create_model_keeps_its_config() -> None:
    model = create_model("mlp", in_shape=[5], num_outputs=2)  # a JSON list is fine
    assert model.config == ModelConfig(in_shape=(5,), num_outputs=2)
    assert model.config.depth == 2 and model.config.width == 32


def _expect(message: str):
    return pytest.raises(ModelConfigError, match=message)


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("vgg", {}, r"^unknown model 'vgg'; choose one of: cnn, mlp, resnet$"),
        (
            "mlp",
            {"activation": "relu6"},
            r"^unknown activation 'relu6'; choose one of: "
            r"elu, gelu, leaky_relu, relu, sigmoid, silu, swish, tanh$",
        ),
        (
            "mlp",
            {"init": "glorot"},
            r"^unknown init 'glorot'; choose one of: default, he_normal, he_uniform, "
            r"naive_normal, orthogonal, xavier_normal, xavier_uniform$",
        ),
        ("mlp", {"skip": "dense"}, r"^unknown skip 'dense'; choose one of: highway, none, resid"),
        ("mlp", {"activation": "ReLU"}, r"unknown activation 'ReLU'"),  # names are exact
        ("mlp", {"depth": 0}, r"depth must be an integer >= 1, got 0"),
        ("mlp", {"depth": 2.5}, r"depth must be an integer >= 1, got 2.5"),
        ("mlp", {"depth": True}, r"depth must be an integer >= 1, got True"),
        ("cnn", {"width": 0}, r"width must be an integer >= 1, got 0"),
        ("mlp", {"num_outputs": 0}, r"num_outputs must be an integer >= 1, got 0"),
        ("mlp", {"dropout": 1.0}, r"dropout must be a number in \[0, 1\), got 1.0"),
        ("mlp", {"dropout": -0.1}, r"dropout must be a number in \[0, 1\), got -0.1"),
        ("mlp", {"dropout": float("nan")}, r"dropout must be a number in \[0, 1\), got nan"),
        ("mlp", {"batchnorm": "yes"}, r"batchnorm must be true or false, got 'yes'"),
        ("mlp", {"in_shape": ()}, r"in_shape must have at least one dimension"),
        ("mlp", {"in_shape": (0, 8)}, r"in_shape size must be an integer >= 1, got 0"),
        ("resnet", {"in_shape": (64,)}, r"model 'resnet' needs in_shape \(C, H, W\)"),
    ],
)
def test_bad_names_and_values_raise_model_config_error(
    name: str, overrides: dict, message: str
) -> None:
    kwargs = {"in_shape": (1, 8, 8), "num_outputs": 3} | overrides
    with _expect(message) as err:
        create_model(name, **kwargs)
    assert isinstance(err.value, ValueError)  # callers may catch the builtin


def test_numpy_like_integers_are_accepted() -> None:
    # Values from a sampler or a JSON/array round trip arrive as numpy-ish ints; anything with
    # __index__ is an integer for our purposes.
    class Int:
        def __index__(self) -> int:
            return 3

    model = create_model("mlp", in_shape=(Int(),), num_outputs=Int(), depth=Int(), width=Int())
    assert model.config.depth == 3 and model.config.in_shape == (3,)
