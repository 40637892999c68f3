"""Bad user data: one line naming the file and what is wrong, exit 2, nothing in the storage.

Each case goes through `hpo launch study FILE --workers 0` (the user data are read before the
study is created even when no worker runs here)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import run_main
from tests.hpo.training.datakit import (
    digit_images,
    user_study,
    write_csv,
    write_folder,
    write_npz,
)

FOLDER = 'name = "folder"\npath = "images"'
NPZ = 'name = "npz"\npath = "data.npz"'
CSV = 'name = "csv"\npath = "table.csv"\nlabel = "species"'


def _png(path: Path, size: tuple[int, int] = (8, 8), mode: str = "L") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size).save(path)


def missing_path(d: Path) -> tuple[str, str, str]:
    return FOLDER, "images: no such folder", "images"


def empty_folder(d: Path) -> tuple[str, str, str]:
    (d / "images").mkdir()
    return FOLDER, "empty folder: no class subfolders", "images"


def class_without_images(d: Path) -> tuple[str, str, str]:
    write_folder(d / "images")
    (d / "images" / "four").mkdir()
    (d / "images" / "four" / "notes.txt").write_text("no image here")
    return FOLDER, "class 'four' has no images", "four"


def corrupt_image(d: Path) -> tuple[str, str, str]:
    write_folder(d / "images")
    (d / "images" / "one" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return FOLDER, "unreadable or corrupt image", "broken.png"


def corrupt_image_named_with_a_newline(d: Path) -> tuple[str, str, str]:
    write_folder(d / "images")
    (d / "images" / "one" / "bad\nname.png").write_bytes(b"GIF89a")
    return FOLDER, "unreadable or corrupt image", "one/bad\\nname.png"  # escaped: one line


def mixed_sizes(d: Path) -> tuple[str, str, str]:
    write_folder(d / "images")
    _png(d / "images" / "two" / "big.png", (9, 8))
    return FOLDER, "images differ in size: set [data] image_size", "big.png"


def mixed_channels(d: Path) -> tuple[str, str, str]:
    write_folder(d / "images")
    _png(d / "images" / "two" / "color.png", mode="RGB")
    return FOLDER, "images differ in channels", "color.png"


def one_class(d: Path) -> tuple[str, str, str]:
    write_folder(d / "images")
    for name in ("one", "two"):
        for image in (d / "images" / name).iterdir():
            image.unlink()
        (d / "images" / name).rmdir()
    return FOLDER, "1 class (zero); at least 2 needed", "images"


def too_few_for_the_split(d: Path) -> tuple[str, str, str]:
    write_folder(d / "images", per_class=1)
    return FOLDER, "too few for the split", "images"


def symlink_out_of_the_folder(d: Path) -> tuple[str, str, str]:
    write_folder(d / "images")
    _png(d / "outside" / "secret.png")
    (d / "images" / "three").mkdir()
    os.symlink(d / "outside" / "secret.png", d / "images" / "three" / "secret.png")
    return FOLDER, "class 'three' has no images", "three"  # the link is not followed


def decompression_bomb(d: Path) -> tuple[str, str, str]:
    write_folder(d / "images")
    _png(d / "images" / "one" / "huge.png", (8, 8))  # huge once the guard's limit is lowered
    return FOLDER, "decompression-bomb guard", ".png"


def missing_label_column(d: Path) -> tuple[str, str, str]:
    write_csv(d / "table.csv")
    return CSV.replace("species", "kind"), "no label column 'kind'", "table.csv"


def non_numeric_feature(d: Path) -> tuple[str, str, str]:
    write_csv(d / "table.csv", [["1", "2", "3", "a"]] * 6 + [["1", "two", "3", "b"]] * 6)
    return CSV, "row 8, column 'ash': 'two' is not a number", "table.csv"


def nan_feature(d: Path) -> tuple[str, str, str]:
    write_csv(d / "table.csv", [["1", "2", "3", "a"]] * 6 + [["1", "2", "nan", "b"]] * 6)
    return CSV, "column 'hue': 'nan' is NaN or inf", "table.csv"


def inf_feature_in_npz(d: Path) -> tuple[str, str, str]:
    x = np.ones((36, 3), dtype=np.float32)
    x[5, 1] = np.inf
    write_npz(d / "data.npz", x_train=x)
    return NPZ.replace("cnn", "mlp"), "x_train holds NaN or inf (first at example 5", "data.npz"


def npz_without_y_train(d: Path) -> tuple[str, str, str]:
    write_npz(d / "data.npz", y_train=None)
    return NPZ, "no y_train in the archive (it holds x_train)", "data.npz"


def npz_mismatched_lengths(d: Path) -> tuple[str, str, str]:
    images, labels = digit_images()
    write_npz(d / "data.npz", y_train=labels[:5])
    return NPZ, f"x_train has {len(images)} examples but y_train has 5 labels", "data.npz"


def npz_object_array(d: Path) -> tuple[str, str, str]:
    labels = np.array([f"c{i % 3}" for i in range(36)], dtype=object)
    write_npz(d / "data.npz", y_train=labels)
    return NPZ, "y_train is an object array", "data.npz"


def not_an_npz(d: Path) -> tuple[str, str, str]:
    (d / "data.npz").write_bytes(b"PK\x03\x04 truncated")
    return NPZ, "not a readable .npz archive", "data.npz"


CASES: dict[str, Callable[[Path], tuple[str, str, str]]] = {
    f.__name__: f
    for f in (
        missing_path,
        empty_folder,
        class_without_images,
        corrupt_image,
        corrupt_image_named_with_a_newline,
        mixed_sizes,
        mixed_channels,
        one_class,
        too_few_for_the_split,
        symlink_out_of_the_folder,
        decompression_bomb,
        missing_label_column,
        non_numeric_feature,
        nan_feature,
        inf_feature_in_npz,
        npz_without_y_train,
        npz_mismatched_lengths,
        npz_object_array,
        not_an_npz,
    )
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_data_is_one_line_exit_2_and_nothing_stored(
    case: Callable[[Path], tuple[str, str, str]], tmp_path: Path, monkeypatch
) -> None:
    data, message, named = case(tmp_path)
    model = "mlp" if "label" in data or case is inf_feature_in_npz else "cnn"
    study = user_study(tmp_path, "bad", data, model=model)
    if case is decompression_bomb:
        from PIL import Image

        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 16)  # an 8x8 image is 4x the limit
    db = tmp_path / "hpo.db"
    artifacts = tmp_path / "artifacts"
    args = ["--storage", f"sqlite:///{db}", "--artifacts", str(artifacts)]
    code, out, err = run_main(*args, "launch", "study", str(study), "--workers", "0")
    assert code == 2, out + err
    line = err.strip().splitlines()[-1]  # a skipped symlink is a warning line before it
    assert "Traceback" not in err and line.startswith("error: "), err
    assert message in line and named in line, line
    assert not db.exists()  # nothing was written to the storage: it was never opened
