"""A user's own data written to a temporary folder: an image folder, an npz, a csv, and the
study file that names it. Small (digits), so a test reads and trains on it in a second."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

PER_CLASS = 12  # images per class: enough for a 60/20/20 stratified split of 3 classes
CLASSES = (0, 1, 2)


def digit_images(per_class: int = PER_CLASS) -> tuple[np.ndarray, np.ndarray]:
    """uint8 8x8 digits (N, 8, 8) of CLASSES, 0..240, and their labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    keep = np.concatenate([np.flatnonzero(bunch.target == c)[:per_class] for c in CLASSES])
    return (bunch.images[keep] * 15).astype(np.uint8), bunch.target[keep].astype(np.int64)


def write_folder(
    root: Path, *, per_class: int = PER_CLASS, names: Sequence[str] = ("one", "two", "zero")
) -> Path:
    """root/<class>/<i>.png grayscale digits; class folder names sorted differently from
    the digits they hold, so a test sees that labels follow the sorted names."""
    from PIL import Image

    images, labels = digit_images(per_class)
    by_digit = {0: names[2], 1: names[0], 2: names[1]}
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / by_digit[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i}.png")
    return root


def write_npz(path: Path, **overrides: object) -> Path:
    images, labels = digit_images()
    arrays = {"x_train": images, "y_train": labels, **overrides}
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def write_csv(path: Path, rows: Sequence[Sequence[object]] | None = None) -> Path:
    """Wine-like table: three numeric columns and a string label `species`."""
    if rows is None:
        rng = np.random.default_rng(0)
        rows = [
            [f"{v:.4f}" for v in rng.normal(k, 0.3, 3)] + [f"kind_{k}"]
            for k in range(3)
            for _ in range(PER_CLASS)
        ]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["alcohol", "ash", "hue", "species"])
        writer.writerows(rows)
    return path


def user_study(
    folder: Path, name: str, data: str, *, model: str, trials: int = 2, space: str = ""
) -> Path:
    """A tiny study file over a user's data (`data`: the [data] lines), 1 epoch a trial."""
    path = folder / f"{name}.toml"
    path.write_text(
        f'[study]\nname = "{name}"\ntrials = {trials}\n[model]\nname = "{model}"\n'
        f"[data]\n{data}\n[train]\nepochs = 1\ndiagnostics = false\n"
        '[pruner]\nname = "none"\n'
        "[space]\ndepth = 1\nwidth = 4\nlr = 0.05\nbatch_size = 16\n" + space
    )
    return path


KINDS = {
    "folder": ('name = "folder"\npath = "images"', "cnn"),
    "npz": ('name = "npz"\npath = "data.npz"', "cnn"),
    "csv": ('name = "csv"\npath = "table.csv"\nlabel = "species"', "mlp"),
}


def write_kind(folder: Path, kind: str) -> Path:
    """The data of `kind` in `folder`, as KINDS names it, and a study file over it."""
    if kind == "folder":
        write_folder(folder / "images")
    elif kind == "npz":
        write_npz(folder / "data.npz")
    else:
        write_csv(folder / "table.csv")
    data, model = KINDS[kind]
    return user_study(folder, f"own-{kind}", data, model=model)
