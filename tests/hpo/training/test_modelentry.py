"""Own networks: finding, checking and building a study's [model] entry."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from hpo.config.spec import StudySpec, parse_spec
from hpo.errors import ModelEntryError, TrialTooLarge
from hpo.study.space import split_params
from hpo.training.diagnostics import record_layer_stats
from hpo.training.memory import check_built_fits, check_fits, estimate_own_memory
from hpo.training.modelentry import (
    build_own,
    check_build,
    check_same_source,
    check_signature,
    create_network,
    first_params,
    load_builder,
    source_sha256,
    with_source,
)

NETS = """
from torch import nn

def build(input_shape, num_classes, *, hidden=8, depth=1):
    layers = [nn.Flatten()]
    width = 1
    for size in input_shape:
        width *= size
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, num_classes))
"""


def _module(folder: Path, text: str = NETS, name: str = "ownnets") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _spec(folder: Path, space: dict | None = None, entry: str = "ownnets:build") -> StudySpec:
    raw = {
        "study": {"name": "own"},
        "model": {"entry": entry},
        "space": space if space is not None else {"hidden": {"low": 4, "high": 16}, "lr": 0.1},
    }
    spec = parse_spec(raw, source="f")
    return StudySpec(**{**spec.__dict__, "entry_dir": str(folder)})


def test_build_gets_every_key_but_the_training_ones(tmp_path: Path) -> None:
    _module(tmp_path)
    spec = _spec(tmp_path)
    params = {"hidden": 12, "depth": 2, "lr": 0.1, "batch_size": 32}
    model_params, train_params = split_params(params, own=True)
    assert (model_params, train_params) == (
        {"hidden": 12, "depth": 2},
        {"lr": 0.1, "batch_size": 32},
    )
    net = create_network(spec, (2,), 3, model_params)
    assert [m.out_features for m in net if isinstance(m, nn.Linear)] == [12, 12, 3]


def test_first_params_take_fixed_values_first_choices_and_lows() -> None:
    spec = parse_spec(
        {
            "study": {"name": "x"},
            "model": {"entry": "a:b"},
            "space": {"k": {"choices": ["x", "y"]}, "n": {"low": 2, "high": 5}, "lr": 0.5},
        },
        source="f",
    )
    assert first_params(spec.space) == {"k": "x", "n": 2, "lr": 0.5}


def test_an_unknown_key_lists_what_build_accepts(tmp_path: Path) -> None:
    _module(tmp_path)
    builder = load_builder("ownnets:build", str(tmp_path))
    message = (
        r"\[model\] entry 'ownnets:build': build takes no keyword 'width' .*accepts: hidden, depth"
    )
    with pytest.raises(ModelEntryError, match=message):
        check_signature("ownnets:build", builder, _spec(tmp_path, {"width": 8}).space)
    check_signature("ownnets:build", builder, _spec(tmp_path, {"hidden": 8, "lr": 0.1}).space)


def test_build_with_kwargs_takes_any_key_and_a_required_one_must_be_set(tmp_path: Path) -> None:
    _module(tmp_path, "def build(shape, classes, *, size, **rest):\n    return None\n", "kw")
    builder = load_builder("kw:build", str(tmp_path))
    check_signature("kw:build", builder, _spec(tmp_path, {"size": 2, "anything": 1}).space)
    with pytest.raises(ModelEntryError, match="build needs 'size', which \\[space\\] does not set"):
        check_signature("kw:build", builder, _spec(tmp_path, {"anything": 1}).space)


@pytest.mark.parametrize(
    ("text", "entry", "message"),
    [
        (NETS, "nowhere:build", r"'nowhere:build': no module 'nowhere' in .* or on PYTHONPATH"),
        (
            "import not_a_module_here\n",
            "ownnets:build",
            r"importing .*ownnets\.py raised ModuleNotFoundError",
        ),
        (NETS, "ownnets:missing", r"module 'ownnets' \(.*\) has no function 'missing'"),
        ("build = 3\n", "ownnets:build", r"'build' in .* is not a function"),
    ],
)
def test_what_cannot_be_imported_is_one_line_naming_the_entry(
    tmp_path: Path, text: str, entry: str, message: str
) -> None:
    _module(tmp_path, text)
    with pytest.raises(ModelEntryError, match=message) as caught:
        load_builder(entry, str(tmp_path))
    assert len(str(caught.value).splitlines()) == 1


def test_a_module_named_like_one_hpo_imported_is_refused_not_swapped_in(tmp_path: Path) -> None:
    import models

    _module(tmp_path, NETS, name="models")  # would replace hpo's own models package
    with pytest.raises(ModelEntryError, match=r"the name 'models' is taken by a module hpo has"):
        load_builder("models:build", str(tmp_path))
    assert sys.modules["models"] is models
    assert callable(models.create_model)


def test_a_build_that_raises_or_returns_no_module_is_named(tmp_path: Path) -> None:
    def raises(shape: tuple[int, ...], classes: int, **params: object) -> nn.Module:
        raise ValueError("hidden must be even\nsecond line")

    with pytest.raises(
        ModelEntryError,
        match=r"'e:f': build\(\(2,\), 3, hidden=5\) raised ValueError: hidden must be even$",
    ):
        build_own("e:f", raises, (2,), 3, {"hidden": 5})
    with pytest.raises(ModelEntryError, match=r"build returned dict, not a torch\.nn\.Module"):
        build_own("e:f", lambda shape, classes: {}, (2,), 3, {})


def test_check_build_refuses_a_network_of_the_wrong_output(tmp_path: Path) -> None:
    _module(tmp_path, NETS.replace("nn.Linear(width, num_classes)", "nn.Linear(width, 4)"))
    wrong = r"answers a batch of \(2, 2\) with \(2, 4\); expected \(2, 3\) \(one score per class\)"
    with pytest.raises(ModelEntryError, match=wrong):
        check_build(_spec(tmp_path), (2,), 3)
    binary = r"with \(2, 4\); expected \(2, 1\) or \(2, 2\)"  # two classes: one logit or two
    with pytest.raises(ModelEntryError, match=binary):
        check_build(_spec(tmp_path), (2,), 2)
    _module(tmp_path)  # the file fixed: imported again, as it is now
    check_build(_spec(tmp_path), (2,), 3)
    check_build(_spec(tmp_path), (2,), 2)


def test_the_same_module_name_in_two_folders_builds_each_folders_own(tmp_path: Path) -> None:
    _module(tmp_path / "a")
    _module(tmp_path / "b", NETS.replace("nn.Linear(width, num_classes)", "nn.Linear(width, 7)"))
    net_a = create_network(_spec(tmp_path / "a"), (2,), 3, {})
    net_b = create_network(_spec(tmp_path / "b"), (2,), 3, {})
    assert (net_a[-1].out_features, net_b[-1].out_features) == (3, 7)


def test_a_worker_with_other_code_refuses_to_run_it(tmp_path: Path) -> None:
    path = _module(tmp_path)
    spec = with_source(_spec(tmp_path))
    assert spec.entry_sha256 == source_sha256("ownnets:build", str(tmp_path))
    check_same_source(spec)  # the same file: runs
    create_network(spec, (2,), 3, {})
    path.write_text(NETS + "\n# edited\n", encoding="utf-8")
    with pytest.raises(
        ModelEntryError,
        match=r"the module here \(.*ownnets\.py, sha256 \w{12}\) differs from the one study 'own' was launched with",
    ):
        check_same_source(spec)
    with pytest.raises(ModelEntryError, match="differs from the one study 'own' was launched"):
        create_network(spec, (2,), 3, {})  # a trial after the edit fails, naming why


def test_the_memory_guard_counts_an_own_networks_parameters(tmp_path: Path) -> None:
    _module(tmp_path)
    spec = _spec(tmp_path)
    params = {"hidden": 16, "depth": 2, "batch_size": 8}
    estimate = estimate_own_memory(spec, params, (1, 8, 8), 10)
    assert estimate is not None
    built = create_network(spec, (1, 8, 8), 10, {"hidden": 16, "depth": 2})
    assert estimate.parameters == sum(p.numel() for p in built.parameters())
    # 2 classes are one output to check_fits, and an own build's num_classes 2
    assert check_fits(spec, params, (2,), 1, "cpu") is not None
    tiny = StudySpec(**{**spec.__dict__, "train": type(spec.train)(max_memory_mb=0.01)})
    with pytest.raises(TrialTooLarge, match="too large: estimated"):
        check_fits(tiny, {"hidden": 4096, "depth": 4}, (1, 8, 8), 10, "cpu")


def test_a_network_the_meta_device_cannot_build_is_counted_once_built(tmp_path: Path) -> None:
    _module(
        tmp_path,
        NETS.replace(
            "    layers = [nn.Flatten()]",
            "    import torch\n    torch.zeros(1).item()\n    layers = [nn.Flatten()]",
        ),
    )
    spec = _spec(tmp_path)
    assert check_fits(spec, {"hidden": 8}, (2,), 3, "cpu") is None  # .item() on meta fails
    net = create_network(spec, (2,), 3, {"hidden": 4096, "depth": 3})
    tiny = StudySpec(**{**spec.__dict__, "train": type(spec.train)(max_memory_mb=1)})
    with pytest.raises(TrialTooLarge, match="too large"):
        check_built_fits(tiny, net, {"hidden": 4096}, "cpu")
    check_built_fits(spec, net, {"hidden": 4096}, "cpu")


def test_diagnostics_measure_whatever_linear_and_conv_layers_it_has() -> None:
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    attrs: dict[str, object] = {}
    batch = (torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,)))
    record_layer_stats(attrs, "init", net, batch)
    assert len(attrs["diag_init_grad_norm"]) == 2
    assert len(attrs["diag_init_act_std"]) == 1


def test_the_ready_made_example_builds_for_images_and_features() -> None:
    from hpo.config.spec import load_spec
    from hpo.training.memory import largest_config

    study = Path(__file__).parents[3] / "studies" / "own-model.toml"
    spec = load_spec(study)
    assert spec.entry_dir == str(study.parent)
    check_build(spec, (1, 8, 8), 10)  # digits
    check_build(spec, (2,), 2)  # rings: the feature branch
    model_params, _ = split_params(largest_config(spec.space), own=True)
    net = create_network(spec, (1, 8, 8), 10, model_params)
    assert net(torch.zeros(4, 1, 8, 8)).shape == (4, 10)
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
