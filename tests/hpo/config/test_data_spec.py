"""The `[data]` keys of a user's own data set: path, label, image_size, channels."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from hpo.config.spec import load_spec, parse_spec, spec_from_dict
from hpo.errors import SpecError

HEAD = '[study]\nname = "s"\n[model]\nname = "{model}"\n[data]\n'


def parse(model: str, data: str):
    return parse_spec(tomllib.loads(HEAD.format(model=model) + data), source="f.toml")


def test_path_is_made_absolute_against_the_study_file(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    study = folder / "study.toml"
    text = 'name = "folder"\npath = "images"\nimage_size = [16, 12]\nchannels = 1\n'
    study.write_text(HEAD.format(model="cnn") + text)
    spec = load_spec(study)
    assert spec.data.path == str(folder.resolve() / "images")
    assert (spec.data.image_size, spec.data.channels) == ((16, 12), 1)
    assert spec_from_dict(spec.to_dict()) == spec  # the stored snapshot names the same files


def test_csv_and_npz_parse() -> None:
    csv = parse("mlp", 'name = "csv"\npath = "/t.csv"\nlabel = "species"\n')
    assert (csv.data.name, csv.data.label) == ("csv", "species")
    for model in ("cnn", "mlp"):  # an npz holds images or features: its reader says which
        assert parse(model, 'name = "npz"\npath = "/d.npz"\n').data.path == "/d.npz"


BAD = {
    "no path": ("cnn", 'name = "folder"\n', "data.path: is required for data 'folder'"),
    "no label": ("mlp", 'name = "csv"\npath = "t.csv"\n', "data.label: is required for csv"),
    "label on npz": (
        "mlp",
        'name = "npz"\npath = "d.npz"\nlabel = "y"\n',
        "data.label: does not apply to data 'npz'; it takes path",
    ),
    "path on digits": ("cnn", 'name = "digits"\npath = "x"\n', "data.path: applies to data"),
    "bad size": (
        "cnn",
        'name = "folder"\npath = "i"\nimage_size = [0, 5]\n',
        "data.image_size: [0, 5] must be [height, width], integers in [1, 1024]",
    ),
    "bad channels": (
        "cnn",
        'name = "folder"\npath = "i"\nchannels = 2\n',
        "data.channels: 2 must be 1 (grayscale) or 3 (RGB)",
    ),
    "dir": ("cnn", 'name = "folder"\npath = "i"\ndir = "x"\n', "read from data.path, not"),
    "mlp on images": (
        "mlp",
        'name = "folder"\npath = "i"\n',
        "model.name: mlp cannot train on folder data holding images; use cnn or resnet",
    ),
    "cnn on a table": (
        "cnn",
        'name = "csv"\npath = "t.csv"\nlabel = "y"\n',
        "model.name: cnn cannot train on csv data holding features; use mlp",
    ),
    "crop_flip on a table": (
        "mlp",
        'name = "csv"\npath = "t.csv"\nlabel = "y"\n[space]\naugment = "crop_flip"\n',
        "space.augment: crop_flip needs images",
    ),
}


@pytest.mark.parametrize("model, data, message", BAD.values(), ids=BAD.keys())
def test_bad_user_data_keys_are_one_line(model: str, data: str, message: str) -> None:
    with pytest.raises(SpecError) as error:
        parse(model, data)
    assert message in str(error.value)
    assert "\n" not in str(error.value)
