"""The study-file parser on good input and on every kind of bad input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hpo.config.space import CategoricalParam, FixedParam, FloatParam, IntParam
from hpo.config.spec import load_spec, parse_spec, spec_from_dict
from hpo.errors import SpecError

STUDIES = sorted(Path(__file__).parents[3].joinpath("studies").glob("*.toml"))
MINIMAL = '[study]\nname = "s"\n[model]\nname = "mlp"\n'
CNN = '[study]\nname = "s"\n[model]\nname = "cnn"\n'


def parse(text: str):
    import tomllib

    from hpo.study.samplers import check_options

    return check_options(parse_spec(tomllib.loads(text), source="f.toml"), source="f.toml")


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_ready_made_study_files_load_and_round_trip(path: Path) -> None:
    spec = load_spec(path)
    assert spec.space, "a ready-made study searches something"
    assert spec_from_dict(spec.to_dict()) == spec


def test_ready_made_studies_cover_the_issue() -> None:
    names = {p.stem for p in STUDIES}
    assert {"digits-cnn", "digits-resnet", "rings-mlp"} <= names
    datasets = {load_spec(p).data.name for p in STUDIES}
    assert {"digits", "rings", "fashion-mnist", "cifar10", "folder", "npz", "csv"} <= datasets


def test_defaults_of_a_minimal_file() -> None:
    spec = parse(MINIMAL)
    assert (spec.metric, spec.direction, spec.trials) == ("val_accuracy", "maximize", 30)
    assert (spec.data.name, spec.sampler.name, spec.pruner.name) == ("digits", "tpe", "median")
    assert spec.space == {}


def test_val_loss_minimizes_by_default() -> None:
    spec = parse('[study]\nname = "s"\nmetric = "val_loss"\n[model]\nname = "mlp"\n')
    assert spec.direction == "minimize"


def test_space_entries_become_typed_params() -> None:
    spec = parse(
        MINIMAL
        + "[space]\n"
        + "depth = { low = 1, high = 4 }\n"
        + "width = { low = 8, high = 64, log = true }\n"
        + "dropout = { low = 0.0, high = 0.5, step = 0.1 }\n"
        + 'activation = { choices = ["relu", "gelu"] }\n'
        + "lr = { low = 1e-4, high = 1e-1, log = true }\n"
        + "batchnorm = true\n"
        + "weight_decay = { low = 0, high = 0 }\n"
    )
    assert spec.space["depth"] == IntParam(1, 4)
    assert spec.space["width"] == IntParam(8, 64, log=True)
    assert spec.space["dropout"] == FloatParam(0.0, 0.5, step=0.1)
    assert spec.space["activation"] == CategoricalParam(("relu", "gelu"))
    assert spec.space["lr"] == FloatParam(1e-4, 1e-1, log=True)
    assert spec.space["batchnorm"] == FixedParam(True)
    # an integer-looking range of a float key is still a float range
    assert spec.space["weight_decay"] == FloatParam(0.0, 0.0)
    assert spec_from_dict(spec.to_dict()) == spec


def test_identity_ignores_name_budget_and_local_paths() -> None:
    spec = parse(MINIMAL)
    other = dataclasses.replace(
        spec, name="t", trials=99, data=dataclasses.replace(spec.data, dir="/x")
    )
    assert other.identity() == spec.identity()
    changed = dataclasses.replace(spec, train=dataclasses.replace(spec.train, epochs=3))
    assert changed.identity() != spec.identity()


BAD_SPECS = {
    "unknown key, closest suggested": (
        '[study]\nname = "s"\ntrails = 3\n[model]\nname = "mlp"\n',
        "study.trails: unknown key 'trails' (did you mean 'trials'?)",
    ),
    "unknown section": (MINIMAL + "[sampeler]\n", "did you mean 'sampler'?"),
    "unknown model": (
        '[study]\nname = "s"\n[model]\nname = "vgg"\n',
        "model.name: unknown model 'vgg'; choose one of: cnn, mlp, resnet",
    ),
    "missing model": ('[study]\nname = "s"\n', "model.name: unknown model None"),
    "missing name": ('[model]\nname = "mlp"\n', "study.name: is required"),
    "name with a newline": (
        '[study]\nname = "a\\nb"\n[model]\nname = "mlp"\n',
        "study.name: 'a\\nb': a study name takes printable characters only",
    ),
    "name with an escape sequence": (
        '[study]\nname = "\\u001b[2Jx"\n[model]\nname = "mlp"\n',
        "study.name: '\\x1b[2Jx': a study name takes printable characters only",
    ),
    "unknown dataset": (
        MINIMAL + '[data]\nname = "imagenet"\n',
        "data.name: unknown dataset 'imagenet'; choose one of: cifar10, csv, digits",
    ),
    "unknown activation": (
        MINIMAL + '[space]\nactivation = { choices = ["relu", "relu6"] }\n',
        "space.activation: choice 'relu6' is not allowed; activation must be one of: elu, gelu",
    ),
    "unknown fixed activation": (
        MINIMAL + '[space]\nactivation = "swishy"\n',
        "value 'swishy' is not allowed",
    ),
    "unknown init": (
        MINIMAL + '[space]\ninit = "lecun"\n',
        "space.init: value 'lecun' is not allowed; init must be one of: default, he_normal",
    ),
    "unknown skip": (
        MINIMAL + '[space]\nskip = "dense"\n',
        "skip must be one of: highway, none, residual",
    ),
    "unknown sampler": (
        MINIMAL + '[sampler]\nname = "grid"\n',
        "sampler.name: unknown sampler 'grid'; choose one of: gp, nsga2, qmc, random, tpe",
    ),
    "bad sampler option": (
        MINIMAL + '[sampler]\nname = "tpe"\noptions = { n_startup = 3 }\n',
        "[sampler] options.n_startup: the tpe sampler has no option 'n_startup' (did you mean",
    ),
    "unknown pruner": (
        MINIMAL + '[pruner]\nname = "asha"\n',
        "pruner.name: unknown pruner 'asha'; choose one of: hyperband, median, none",
    ),
    "dropout 1.5": (
        MINIMAL + "[space]\ndropout = 1.5\n",
        "space.dropout: value 1.5 is not allowed; dropout must be a rate in [0, 1)",
    ),
    "dropout range up to 1": (
        MINIMAL + "[space]\ndropout = { low = 0.0, high = 1.0 }\n",
        "bound 1.0 is not allowed; dropout must be a rate in [0, 1)",
    ),
    "depth 0": (
        MINIMAL + "[space]\ndepth = 0\n",
        "space.depth: value 0 is not allowed; depth must be an integer in [1, 64]",
    ),
    "depth range from 0": (
        MINIMAL + "[space]\ndepth = { low = 0, high = 3 }\n",
        "bound 0 is not allowed; depth must be an integer in [1, 64]",
    ),
    "low > high": (
        MINIMAL + "[space]\nwidth = { low = 64, high = 8 }\n",
        "space.width: low 64 is greater than high 8",
    ),
    "log with low <= 0": (
        MINIMAL + "[space]\nweight_decay = { low = 0.0, high = 0.1, log = true }\n",
        "space.weight_decay: log scale needs low > 0",
    ),
    "empty choices": (
        MINIMAL + "[space]\noptimizer = { choices = [] }\n",
        "space.optimizer: choices must be a non-empty list",
    ),
    "float depth": (
        MINIMAL + "[space]\ndepth = { low = 1.5, high = 3 }\n",
        "bound 1.5 is not allowed; depth must be an integer",
    ),
    "unknown hyperparameter": (
        MINIMAL + "[space]\nlearning_rate = 0.1\n",
        "space.learning_rate: unknown hyperparameter 'learning_rate'",
    ),
    "range without high": (
        MINIMAL + "[space]\nlr = { low = 0.1 }\n",
        "space.lr: a range needs both low and high",
    ),
    "trials 0": (
        '[study]\nname = "s"\ntrials = 0\n[model]\nname = "mlp"\n',
        "study.trials: 0 must be an integer in [1, 1000000]",
    ),
    "trials negative": (
        '[study]\nname = "s"\ntrials = -5\n[model]\nname = "mlp"\n',
        "study.trials: -5 must be an integer in [1, 1000000]",
    ),
    "epochs 0": (
        MINIMAL + "[train]\nepochs = 0\n",
        "train.epochs: 0 must be an integer in [1, 10000]",
    ),
    "unknown metric": (
        '[study]\nname = "s"\nmetric = "f1"\n[model]\nname = "mlp"\n',
        "study.metric: unknown metric 'f1'",
    ),
    "section not a table": ('study = 3\n[model]\nname = "mlp"\n', "study: must be a table"),
    "unknown schedule": (
        MINIMAL + '[space]\nschedule = "linear"\n',
        "space.schedule: value 'linear' is not allowed; schedule must be one of: cosine, none, step",
    ),
    "negative warmup": (
        MINIMAL + "[space]\nwarmup_epochs = -1\n",
        "space.warmup_epochs: value -1 is not allowed; warmup_epochs must be an integer in [0, 10000]",
    ),
    "augment on digits without forcing": (
        CNN + '[space]\naugment = { choices = ["none", "crop_flip"] }\n',
        "space.augment: crop_flip mirrors images, which can change a digits image's class; "
        "allowed for cifar10, fashion-mnist; set [train] force_augment = true",
    ),
    "augment on mnist without forcing": (
        CNN + '[data]\nname = "mnist"\n[space]\naugment = "crop_flip"\n',
        "set [train] force_augment = true to use it anyway",
    ),
    "augment on rings, forced or not": (
        MINIMAL + '[data]\nname = "rings"\n[train]\nforce_augment = true\n'
        '[space]\naugment = "crop_flip"\n',
        "space.augment: crop_flip needs images; rings are not; allowed: none",
    ),
    "unknown augment": (CNN + '[space]\naugment = "mixup"\n', "augment must be one of: crop_flip"),
    "force_augment not a bool": (MINIMAL + '[train]\nforce_augment = "yes"\n', "true or false"),
    "diagnostics not a bool": (MINIMAL + "[train]\ndiagnostics = 1\n", "train.diagnostics"),
    "kernel 4": (
        CNN + "[space]\nkernel = 4\n",
        "space.kernel: value 4 is not allowed; kernel must be one of: 3, 5",
    ),
    "kernel range through 4": (
        CNN + "[space]\nkernel = { low = 3, high = 5 }\n",
        "space.kernel: range value 4 is not allowed; kernel must be one of: 3, 5",
    ),
    "kernel on an mlp": (
        MINIMAL + "[space]\nkernel = 5\n",
        "space.kernel: applies to model cnn, resnet, not 'mlp'",
    ),
    "pool on a resnet": (
        '[study]\nname = "s"\n[model]\nname = "resnet"\n[space]\npool = "avg"\n',
        "space.pool: applies to model cnn, not 'resnet'",
    ),
    "unknown pool": (CNN + '[space]\npool = "min"\n', "pool must be one of: avg, max"),
    "negative l1": (
        MINIMAL + "[space]\nl1 = { low = -1e-4, high = 1e-3 }\n",
        "space.l1: bound -0.0001 is not allowed; l1 must be a number in [0, 10]",
    ),
    "warmup range to 2**63 - 1": (
        MINIMAL + "[space]\nwarmup_epochs = { low = 0, high = 9223372036854775807 }\n",
        "space.warmup_epochs: bound 9223372036854775807 is not allowed; warmup_epochs must be "
        "an integer in [0, 10000]",
    ),
    "depth 10000": (
        MINIMAL + "[space]\ndepth = 10000\n",
        "space.depth: value 10000 is not allowed; depth must be an integer in [1, 64]",
    ),
    "width range to 1e30": (
        MINIMAL + "[space]\nwidth = { low = 8, high = 1e30 }\n",
        "space.width: bound 1e+30 is not allowed; width must be an integer in [1, 8192]",
    ),
    "batch size 10**6": (
        MINIMAL + "[space]\nbatch_size = { choices = [64, 1000000] }\n",
        "space.batch_size: choice 1000000 is not allowed; batch_size must be an integer in "
        "[1, 65536]",
    ),
    "epochs 10**6": (MINIMAL + "[train]\nepochs = 1000000\n", "train.epochs: 1000000 must be"),
    "cnn on rings": (
        CNN + '[data]\nname = "rings"\n',
        "model.name: cnn needs images; rings are points; use mlp",
    ),
    "resnet on rings": (
        '[study]\nname = "s"\n[model]\nname = "resnet"\n[data]\nname = "rings"\n',
        "model.name: resnet needs images; rings are points; use mlp",
    ),
    "sampler seed 2**32 - 1": (
        MINIMAL + "[sampler]\nseed = 4294967295\n",
        "sampler.seed: 4294967295 must be an integer in [0, 2147483647] (each worker adds",
    ),
    "negative sampler seed": (MINIMAL + "[sampler]\nseed = -1\n", "sampler.seed: -1 must be"),
    "negative data seed": (
        MINIMAL + "[data]\nseed = -1\n",
        "data.seed: -1 must be an integer in [0, 2147483647]",
    ),
    "metric as a list": (
        '[study]\nname = "s"\nmetric = ["val_accuracy"]\n[model]\nname = "mlp"\n',
        "study.metric: unknown metric ['val_accuracy']; choose one of: val_accuracy, val_loss",
    ),
    "model name as a list": (
        '[study]\nname = "s"\n[model]\nname = ["mlp"]\n',
        "model.name: unknown model ['mlp']",
    ),
    "data name as a list": (MINIMAL + '[data]\nname = ["rings"]\n', "data.name: unknown dataset"),
    "seed as a sampler option": (
        MINIMAL + '[sampler]\nname = "random"\noptions = { seed = 3 }\n',
        "sampler.options.seed: set the seed as [sampler] seed = N, not as an option",
    ),
    "sampler options as a list": (
        MINIMAL + "[sampler]\noptions = [1]\n",
        "sampler.options: [1] must be a table",
    ),
    "patience 0": (
        MINIMAL + "[space]\npatience = 0\n",
        "space.patience: value 0 is not allowed; patience must be an integer in [1, 10000]",
    ),
}


@pytest.mark.parametrize("text, message", BAD_SPECS.values(), ids=BAD_SPECS.keys())
def test_bad_spec_names_file_key_and_what_is_allowed(text: str, message: str) -> None:
    with pytest.raises(SpecError) as error:
        parse(text)
    text_of_error = str(error.value)
    assert text_of_error.startswith("f.toml: ")
    assert message in text_of_error
    assert "\n" not in text_of_error


@pytest.mark.parametrize(
    "text",
    [
        '"a\\nb" = 1\n' + MINIMAL,
        MINIMAL + '[data]\n"\\u001b[2J" = 1\n',
        MINIMAL + '[space]\n"x\\ny" = 1\n',
    ],
    ids=["top level", "section", "space"],
)
def test_a_key_with_control_characters_is_named_escaped_in_one_line(text: str) -> None:
    """Found by the property test: an unknown key holding a newline split the error line
    (and an escape sequence would reach the terminal)."""
    with pytest.raises(SpecError) as refused:
        parse(text)
    message = str(refused.value)
    assert message.isprintable(), message
    assert "\\n" in message or "\\x1b" in message


@pytest.mark.parametrize(
    "text, key",
    [
        (MINIMAL + f"[space]\nlr = {10**400}\n", "space.lr"),
        (MINIMAL + f"[space]\ndropout = {{ low = 0, high = {10**400} }}\n", "space.dropout"),
        (MINIMAL + f"[data]\nval_fraction = {10**400}\n", "data.val_fraction"),
        ('[study]\nname = "s"\n' + f"timeout = {10**400}\n[model]\nname = 'mlp'\n", "timeout"),
    ],
    ids=["value", "bound", "data", "study"],
)
def test_an_integer_past_any_float_is_refused_not_a_crash(text: str, key: str) -> None:
    """Found by the property tests: TOML (and JSON) hold any integer, and 10**400 where a
    number belongs was an OverflowError traceback from math.isfinite."""
    with pytest.raises(SpecError, match=key):
        parse(text)


@pytest.mark.parametrize(
    "key, value",
    [
        ("lr", 1e30),
        ("lr", 1.7e308),
        ("weight_decay", 1.7e308),
        ("weight_decay", 10**30),
        ("l1", 10**30),
        ("l1", 11),
    ],
)
def test_rates_past_max_rate_are_refused(key: str, value: float) -> None:
    """Found by the property tests: weight_decay = 1.7e308 or l1 = 10**30 was accepted, and
    every trial then failed with an overflow traceback as its reason."""
    with pytest.raises(SpecError, match=rf"space\.{key}: value .* is not allowed; .*, 10\]"):
        parse(MINIMAL + f"[space]\n{key} = {value!r}\n")
    assert parse(MINIMAL + f"[space]\n{key} = 10\n").space[key].value == 10


def test_an_unknown_model_key_is_refused() -> None:
    """Was: ignored, so `[model] depth = 3` (a space entry in the wrong table) searched
    the default depth without a word."""
    with pytest.raises(SpecError, match=r"model\.depth: unknown key 'depth'; allowed: entry, name"):
        parse(MINIMAL + "depth = 3\n")


def test_an_unknown_train_key_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    """A typo in [train] (epoch for epochs) is named with the keys allowed, never a
    TypeError traceback from building the section."""
    from tests.helpers import run_main

    file = tmp_path / "t.toml"
    file.write_text(MINIMAL + "[train]\nepoch = 3\n")
    db = tmp_path / "t.db"
    code, out, err = run_main("--storage", f"sqlite:///{db}", "launch", "study", str(file))
    assert (code, out) == (2, "")
    allowed = f"error: {file}: train.epoch: unknown key 'epoch' (did you mean 'epochs'?); allowed: "
    assert err.startswith(allowed) and "epochs, force_augment" in err, err
    assert len(err.splitlines()) == 1
    assert not db.exists()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"nope\.toml: no such study file"):
        load_spec(tmp_path / "nope.toml")


def test_malformed_toml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[study]\nname = "s"\ntrials = = 3\n')
    with pytest.raises(SpecError, match=r"bad\.toml: malformed TOML: .*line 3"):
        load_spec(path)


def test_training_techniques_are_searchable_as_values_ranges_and_choices() -> None:
    spec = parse(
        CNN
        + '[data]\nname = "fashion-mnist"\n[space]\n'
        + 'schedule = { choices = ["none", "step", "cosine"] }\n'
        + "warmup_epochs = { low = 0, high = 3 }\n"
        + 'augment = { choices = ["none", "crop_flip"] }\n'
        + 'pool = { choices = ["max", "avg"] }\n'
        + "kernel = { low = 3, high = 5, step = 2 }\n"
        + "l1 = { low = 1e-6, high = 1e-3, log = true }\n"
        + "patience = 3\n"
    )
    assert spec.space["schedule"] == CategoricalParam(("none", "step", "cosine"))
    assert spec.space["warmup_epochs"] == IntParam(0, 3)
    assert spec.space["augment"] == CategoricalParam(("none", "crop_flip"))
    assert spec.space["pool"] == CategoricalParam(("max", "avg"))
    assert spec.space["kernel"] == IntParam(3, 5, step=2)
    assert spec.space["l1"] == FloatParam(1e-6, 1e-3, log=True)
    assert spec.space["patience"] == FixedParam(3)
    assert spec_from_dict(spec.to_dict()) == spec


def test_force_augment_allows_crop_flip_on_digits() -> None:
    spec = parse(CNN + '[train]\nforce_augment = true\n[space]\naugment = "crop_flip"\n')
    assert spec.train.force_augment is True
    assert spec.space["augment"] == FixedParam("crop_flip")
    assert spec_from_dict(spec.to_dict()) == spec
    # augment = "none" needs no forcing anywhere, rings included.
    assert parse(MINIMAL + '[data]\nname = "rings"\n[space]\naugment = "none"\n').space


def test_model_keys_follow_create_model() -> None:
    from hpo.config.space import SPACE_KEYS
    from models.vocabulary import MODEL_KEYS

    assert {"pool", "kernel"} <= MODEL_KEYS <= set(SPACE_KEYS)
    assert not {"schedule", "warmup_epochs", "augment", "l1", "patience"} & MODEL_KEYS


def test_keep_defaults_to_three_and_is_bounded() -> None:
    assert parse(MINIMAL).keep == 3
    spec = parse(MINIMAL.replace('name = "s"\n', 'name = "s"\nkeep = 0\n', 1))
    assert spec.keep == 0
    assert spec_from_dict(spec.to_dict()) == spec
    for bad in ("-1", "101", "2.5", "true", '"3"'):
        text = MINIMAL.replace('name = "s"\n', f'name = "s"\nkeep = {bad}\n', 1)
        with pytest.raises(SpecError, match=r"study\.keep: .* must be an integer in \[0, 100\]"):
            parse(text)
