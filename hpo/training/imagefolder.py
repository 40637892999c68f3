"""`[data] name = "folder"`: a folder of labelled images, decoded once, then cached.

Layout: ``PATH/<class>/*.png|jpg|jpeg|bmp|webp``, or ``PATH/train/<class>/...`` and
``PATH/test/<class>/...`` (the test part is then the official test split). Class names are the
subfolder names, sorted. Images are decoded with Pillow into uint8 (N, C, H, W): converted to
`channels` (1 grayscale, 3 RGB) and resized to `image_size` when given; otherwise every image
must have the same size and channels.

The decoded arrays go to ``CACHE/data-cache/<key>.npz``, keyed by every file's path, size and
modification time and by image_size/channels: the next load (the next trial's worker, every
worker on the machine) reads one array instead of decoding thousands of files.

Untrusted input: a symlink that leads out of the folder is not followed, Pillow's
decompression-bomb guard stays on (a warning-sized image is refused too), and the cache is
read with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from hpo.errors import DataError
from hpo.training.userarrays import UserArrays, label_order, printable

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
CACHE_FOLDER = "data-cache"  # under the artifacts folder
CACHE_VERSION = 1  # bump when the decoding changes: old cache files are then not used
_SPLITS = ("train", "test")

log = logging.getLogger("hpo.training.imagefolder")


class ImageFile(NamedTuple):
    path: str  # a string: 10,000 Paths cost more to build and sort than to read the cache
    size: int  # bytes
    mtime_ns: int  # modification time


Listing = dict[str, list[ImageFile]]  # class name -> image files, sorted by path


def read_folder(
    root: Path,
    image_size: tuple[int, int] | None,
    channels: int | None,
    cache_dir: str | Path | None,
) -> UserArrays:
    """The images under `root` as arrays, from the cache when it holds them."""
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; data folder reads one subfolder per class")
    parts = list_images(root)
    cache = None
    if cache_dir is not None:
        key = cache_key(root, parts, image_size, channels)
        cache = Path(cache_dir) / CACHE_FOLDER / f"{key}.npz"
        cached = _read_cache(cache)
        if cached is not None:
            return cached
    arrays = decode_all(root, parts, image_size, channels)
    if cache is not None:
        _write_cache(cache, arrays)
    return arrays


# --- listing -------------------------------------------------------------------------------------


def list_images(root: Path) -> dict[str, Listing]:
    """{"train": listing} or {"train": ..., "test": ...} (with train/ and test/ subfolders)."""
    top = _subfolders(root, root)
    names = {folder.name for folder in top}
    if names == set(_SPLITS):
        parts = {split: _classes(root / split, root) for split in _SPLITS}
        unknown = sorted(set(parts["test"]) - set(parts["train"]))
        if unknown:
            raise DataError(
                f"{root / 'test'}: class {unknown[0]!r} has no folder in {root / 'train'}; "
                "train/ and test/ must name the same classes"
            )
        return parts
    return {"train": _classes(root, root)}


def _classes(folder: Path, root: Path) -> Listing:
    classes = _subfolders(folder, root)
    if not classes:
        raise DataError(
            f"{folder}: empty folder: no class subfolders (one per class, each holding "
            f"{'/'.join(IMAGE_SUFFIXES)} images)"
        )
    listing: Listing = {}
    for sub in sorted(classes, key=lambda p: label_order(p.name)):
        files = sorted(
            ImageFile(entry.path, entry.stat().st_size, entry.stat().st_mtime_ns)
            for entry in _entries(sub)
            if os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES
            and _inside(entry, root)
            and entry.is_file()
        )
        if not files:
            raise DataError(
                f"{sub}: class {sub.name!r} has no images ({'/'.join(IMAGE_SUFFIXES)} files)"
            )
        listing[sub.name] = files
    return listing


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    """The folder's entries; os.scandir keeps each one's type, so 10,000 files cost one
    listing and one stat each (the cache key needs sizes and mtimes)."""
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError as err:
        raise DataError(f"{folder}: cannot list it ({err.strerror or err})") from None


def _subfolders(folder: Path, root: Path) -> list[Path]:
    return [
        Path(e.path)
        for e in _entries(folder)
        if not e.name.startswith(".") and _inside(e, root) and e.is_dir()
    ]


def _inside(entry: os.DirEntry[str], root: Path) -> bool:
    """Whether `entry` (after its symlinks) stays inside `root`: one leading out is skipped."""
    if not entry.is_symlink():
        return True
    inside = Path(entry.path).resolve().is_relative_to(root.resolve())
    if not inside:
        where = printable(f"{entry.path}: a symlink out of the data folder {root}")
        log.warning("%s; not followed", where)
    return inside


def cache_key(
    root: Path, parts: dict[str, Listing], image_size: tuple[int, int] | None, channels: int | None
) -> str:
    """sha256 of what the decoded arrays depend on: each file's path, size and mtime."""
    files = [
        [split, name, os.path.basename(file.path), file.size, file.mtime_ns]
        for split, listing in parts.items()
        for name, class_files in listing.items()
        for file in class_files
    ]
    key = {
        "version": CACHE_VERSION,
        "root": str(root.resolve()),
        "image_size": image_size,
        "channels": channels,
        "files": files,
    }
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32]


# --- decoding ------------------------------------------------------------------------------------


def decode_all(
    root: Path, parts: dict[str, Listing], image_size: tuple[int, int] | None, channels: int | None
) -> UserArrays:
    names = tuple(parts["train"])
    first: tuple[Path, np.ndarray] | None = None
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, listing in parts.items():
        images, labels = [], []
        for index, name in enumerate(names):
            for file in listing.get(name, []):
                path = Path(file.path)
                image = decode(path, channels, image_size)
                if first is None:
                    first = (path, image)
                _check_like(path, image, *first, sized=image_size is not None)
                images.append(image)
                labels.append(index)
        if images:
            x = np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2))
            out[split] = (x, np.asarray(labels, dtype=np.int64))
    x_test, y_test = out.get("test", (None, None))
    return UserArrays(*out["train"], x_test, y_test, names)


def decode(path: Path, channels: int | None, size: tuple[int, int] | None) -> np.ndarray:
    """One image as uint8 (H, W, C); DataError naming the file if it cannot be."""
    from PIL import Image  # lazy: only folder data need Pillow

    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS and raises above twice that: refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                bands = channels or (1 if len(image.getbands()) == 1 else 3)
                converted = image.convert("L" if bands == 1 else "RGB")
                if size is not None and converted.size != (size[1], size[0]):
                    converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                pixels = np.asarray(converted, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(
            f"{path}: image too large, refused by Pillow's decompression-bomb guard ({err})"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        raise DataError(f"{path}: unreadable or corrupt image ({err})") from None
    return pixels[..., None] if pixels.ndim == 2 else pixels


def _check_like(
    path: Path, image: np.ndarray, first_path: Path, first: np.ndarray, *, sized: bool
) -> None:
    if image.shape[2] != first.shape[2]:
        kinds = {1: "grayscale", 3: "RGB"}
        raise DataError(
            f"{path}: {kinds[image.shape[2]]} but {first_path} is {kinds[first.shape[2]]}; "
            "images differ in channels: set [data] channels = 1 or 3"
        )
    if not sized and image.shape[:2] != first.shape[:2]:
        raise DataError(
            f"{path}: {image.shape[0]}x{image.shape[1]} but {first_path} is "
            f"{first.shape[0]}x{first.shape[1]} (height x width); images differ in size: "
            "set [data] image_size = [height, width]"
        )


# --- cache ---------------------------------------------------------------------------------------


def _read_cache(path: Path) -> UserArrays | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            test = "x_test" in saved.files
            return UserArrays(
                saved["x"],
                saved["y"],
                saved["x_test"] if test else None,
                saved["y_test"] if test else None,
                tuple(str(name) for name in saved["class_names"]),
            )
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:  # torn: decode
        log.warning("%s: unreadable data cache (%s); decoding the images again", path, err)
        return None


def _write_cache(path: Path, arrays: UserArrays) -> None:
    """Written beside, then renamed: a worker reading it meanwhile sees the whole file or none."""
    saved = {"x": arrays.x, "y": arrays.y, "class_names": np.asarray(arrays.class_names, dtype=str)}
    if arrays.x_test is not None and arrays.y_test is not None:
        saved |= {"x_test": arrays.x_test, "y_test": arrays.y_test}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **saved)
        os.replace(tmp, path)
    except OSError as err:  # no cache is slower, not wrong
        log.warning("%s: cannot write the data cache (%s)", path, err)
