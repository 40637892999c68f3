"""A user's data set as arrays (what every reader of hpo.training.userdata returns), and
how labels become class indices: class names sorted, numbers as numbers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpo.errors import DataError


def printable(text: str) -> str:
    """`text` with control characters written as escapes: a file name in a user's folder (or
    a value read back from the storage) must not break or rewrite the one error line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclass(frozen=True)
class UserArrays:
    """A user's data set, read: train part and optional test part."""

    x: np.ndarray  # uint8 (N, C, H, W) images or float32 (N, F) features
    y: np.ndarray  # int64 indices into class_names
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    class_names: tuple[str, ...]  # sorted
    origin: str = ""  # the file or folder they were read from, for error messages

    @property
    def kind(self) -> str:
        return "images" if self.x.dtype == np.uint8 and self.x.ndim == 4 else "features"

    def content_hash(self) -> str:
        """sha256 of the arrays and class names: equal data, equal hash, on every machine."""
        digest = hashlib.sha256()
        for array in (self.x, self.y, self.x_test, self.y_test):
            if array is None:
                digest.update(b"none")
                continue
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(memoryview(array).cast("B"))
        digest.update("\0".join(self.class_names).encode())
        return digest.hexdigest()


# --- labels --------------------------------------------------------------------------------------


def encode_labels(
    path: Path, *parts: np.ndarray | None
) -> tuple[tuple[str, ...], list[np.ndarray | None]]:
    """Sorted class names of the labels in `parts` (numbers sort as numbers), and each part
    as int64 indices into them."""
    present = [np.asarray(p) for p in parts if p is not None]
    if not present:
        return (), list(parts)
    values = np.concatenate([p.astype(str) if p.dtype.kind in "US" else p for p in present])
    if values.dtype.kind in "iub":
        names_sorted = np.unique(values)
        names = tuple(str(v) for v in names_sorted)
        lookup = {v.item(): i for i, v in enumerate(names_sorted)}
    elif values.dtype.kind == "f":
        if not np.isfinite(values).all() or (values != np.round(values)).any():
            raise DataError(f"{path}: labels must be whole numbers or strings, found {values[0]}")
        return encode_labels(path, *(None if p is None else p.astype(np.int64) for p in parts))
    elif values.dtype.kind in "US":
        strings = sorted({str(v) for v in values}, key=label_order)
        names = tuple(strings)
        lookup = {name: i for i, name in enumerate(strings)}
    else:
        raise DataError(f"{path}: labels of type {values.dtype} are neither numbers nor strings")
    encoded: list[np.ndarray | None] = []
    for part in parts:
        if part is None:
            encoded.append(None)
            continue
        items = np.asarray(part)
        keys = items.astype(str) if items.dtype.kind in "US" else items
        encoded.append(np.fromiter((lookup[k.item()] for k in keys), np.int64, len(keys)))
    return names, encoded


def label_order(name: str) -> tuple[int, float, str]:
    """Labels that are all numbers written as text sort as numbers (2 before 10)."""
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)
