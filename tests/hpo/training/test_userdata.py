"""A user's own data (folder, npz, csv) read into the built-in sets' tensors, and the image
folder's decode cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from hpo.config.spec import load_spec
from hpo.runtime.worker import load_study_data
from hpo.training import imagefolder
from hpo.training.userdata import UserSource, read_user_data
from tests.helpers import run_main
from tests.hpo.training.datakit import (
    PER_CLASS,
    digit_images,
    user_study,
    write_csv,
    write_folder,
    write_kind,
    write_npz,
)


def test_folder_labels_follow_the_sorted_class_names(tmp_path: Path) -> None:
    arrays = read_user_data(UserSource("folder", str(write_folder(tmp_path / "images"))))
    assert arrays.class_names == ("one", "two", "zero")
    assert arrays.x.dtype == np.uint8 and arrays.x.shape == (3 * PER_CLASS, 1, 8, 8)
    images, labels = digit_images()
    digit_of = {0: 1, 1: 2, 2: 0}  # class index (sorted names) -> the digit in that folder
    for x, y in zip(arrays.x, arrays.y, strict=True):
        same = [i for i, image in enumerate(images) if np.array_equal(image, x[0])]
        assert same and labels[same[0]] == digit_of[int(y)]


def test_folder_converts_channels_and_resizes(tmp_path: Path) -> None:
    root = str(write_folder(tmp_path / "images"))
    arrays = read_user_data(UserSource("folder", root, image_size=(4, 6), channels=3))
    assert arrays.x.shape == (3 * PER_CLASS, 3, 4, 6)
    assert np.array_equal(arrays.x[:, 0], arrays.x[:, 2])  # gray copied to R, G and B


def test_folder_with_train_and_test_subfolders(tmp_path: Path) -> None:
    write_folder(tmp_path / "images" / "train")
    write_folder(tmp_path / "images" / "test", per_class=3)
    arrays = read_user_data(UserSource("folder", str(tmp_path / "images")))
    assert arrays.x_test is not None and arrays.y_test is not None
    assert (len(arrays.y), len(arrays.y_test)) == (3 * PER_CLASS, 9)
    assert sorted(np.bincount(arrays.y_test)) == [3, 3, 3]


def test_a_symlink_out_of_the_folder_is_not_read(tmp_path: Path) -> None:
    from PIL import Image

    root = write_folder(tmp_path / "images")
    outside = tmp_path / "outside.png"
    Image.new("L", (8, 8), 255).save(outside)
    os.symlink(outside, root / "one" / "link.png")
    os.symlink(root / "one" / "12.png", root / "one" / "inside.png")  # inside: followed
    arrays = read_user_data(UserSource("folder", str(root)))
    assert len(arrays.y) == 3 * PER_CLASS + 1
    assert not (arrays.x == 255).all(axis=(1, 2, 3)).any()  # the white outside image: absent


def test_npz_images_features_and_string_labels(tmp_path: Path) -> None:
    images, labels = digit_images()
    names = np.array(["cat", "ant", "bee"])[labels]
    path = write_npz(tmp_path / "d.npz", x_train=images[..., None], y_train=names)
    arrays = read_user_data(UserSource("npz", str(path)))
    assert arrays.kind == "images" and arrays.x.shape == (len(labels), 1, 8, 8)
    assert arrays.class_names == ("ant", "bee", "cat")
    assert np.array_equal(np.asarray(arrays.class_names)[arrays.y], names)
    features = images.reshape(len(images), -1).astype(np.float64)
    path = write_npz(tmp_path / "f.npz", x_train=features, x_test=features[:6], y_test=labels[:6])
    arrays = read_user_data(UserSource("npz", str(path)))
    assert arrays.kind == "features" and arrays.x.dtype == np.float32
    assert arrays.x_test is not None and arrays.x_test.shape == (6, 64)


def test_csv_labels_sort_numbers_as_numbers(tmp_path: Path) -> None:
    rows = [[str(i), "1", "2", label] for label in ("10", "2", "9") for i in range(5)]
    arrays = read_user_data(UserSource("csv", str(write_csv(tmp_path / "t.csv", rows)), "species"))
    assert arrays.class_names == ("2", "9", "10")
    assert arrays.x.shape == (15, 3) and arrays.x.dtype == np.float32
    assert list(arrays.y[:5]) == [2] * 5  # "10" is the last class


@pytest.mark.parametrize("kind", ["folder", "npz", "csv"])
def test_study_data_split_and_standardized_from_train_only(kind: str, tmp_path: Path) -> None:
    spec = load_spec(write_kind(tmp_path, kind))
    data = load_study_data(spec)
    assert (len(data.train), len(data.val), len(data.test)) == (22, 7, 7)
    assert data.num_classes == 3 and data.class_names is not None
    assert data.identity is not None and data.identity["kind"] == kind
    assert data.identity["examples"] == {"train": 22, "val": 7, "test": 7}
    inputs = data.train.inputs()
    dims = [0, 2, 3] if inputs.ndim == 4 else [0]
    assert torch.allclose(inputs.mean(dim=dims), torch.zeros(1), atol=1e-5)
    assert (data.train.x.dtype == torch.uint8) == (kind != "csv")
    again = load_study_data(spec)  # the same seed, the same split and hash
    assert torch.equal(again.val.y, data.val.y) and again.identity == data.identity


def test_max_train_caps_user_data(tmp_path: Path) -> None:
    study = write_kind(tmp_path, "csv")
    study.write_text(study.read_text().replace("[train]", "max_train = 10\n[train]"))
    assert len(load_study_data(load_spec(study)).train) == 10


def test_second_launch_decodes_no_image(tmp_path: Path, monkeypatch) -> None:
    study = write_kind(tmp_path, "folder")
    decoded: list[Path] = []
    real = imagefolder.decode

    def counting(path: Path, *args: object) -> np.ndarray:
        decoded.append(path)
        return real(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(imagefolder, "decode", counting)
    args = ["--storage", f"sqlite:///{tmp_path / 'hpo.db'}", "--artifacts", str(tmp_path / "a")]
    launch = [*args, "launch", "study", str(study), "--workers", "0"]
    assert run_main(*launch)[0] == 0
    assert len(decoded) == 3 * PER_CLASS
    assert len(list((tmp_path / "a" / "data-cache").glob("*.npz"))) == 1
    assert run_main(*launch)[0] == 0
    assert len(decoded) == 3 * PER_CLASS  # the second launch read the cache: no decode
    changed = tmp_path / "images" / "one" / "12.png"
    os.utime(changed, ns=(0, 10**9))  # another modification time: the key changes
    assert run_main(*launch)[0] == 0
    assert len(decoded) == 6 * PER_CLASS


def test_a_torn_cache_file_is_decoded_again(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "images")
    first = read_user_data(UserSource("folder", str(root), cache_dir=str(tmp_path / "c")))
    [cache] = (tmp_path / "c" / "data-cache").glob("*.npz")
    cache.write_bytes(cache.read_bytes()[:100])
    again = read_user_data(UserSource("folder", str(root), cache_dir=str(tmp_path / "c")))
    assert np.array_equal(first.x, again.x) and first.content_hash() == again.content_hash()


def test_crop_flip_on_npz_features_is_refused(tmp_path: Path) -> None:
    from hpo.errors import DataError

    images, _ = digit_images()
    write_npz(tmp_path / "f.npz", x_train=images.reshape(len(images), -1).astype(np.float32))
    study = user_study(
        tmp_path,
        "flip",
        'name = "npz"\npath = "f.npz"',
        model="mlp",
        space='augment = "crop_flip"\n',
    )
    study.write_text(study.read_text().replace("[pruner]", "force_augment = true\n[pruner]"))
    with pytest.raises(DataError, match="crop_flip"):
        load_study_data(load_spec(study))


STUDIES = Path(__file__).parents[3] / "studies"


@pytest.mark.parametrize(
    "name, shape, classes",
    [
        ("digit-images-folder-cnn", (1, 16, 16), 3),
        ("digits-npz-cnn", (1, 8, 8), 10),
        ("wine-csv-mlp", (13,), 3),
    ],
)
def test_ready_made_own_data_studies_read_their_committed_files(
    name: str, shape: tuple[int, ...], classes: int
) -> None:
    data = load_study_data(load_spec(STUDIES / f"{name}.toml"))
    assert data.in_shape == shape and data.num_classes == classes
    assert data.identity is not None and Path(data.identity["path"]).exists()
