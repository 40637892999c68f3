"""Where the files of the file data sets are found, and how they are read.

Found: in ``data_dir`` (``--data-dir`` / ``data.dir``) when given; else in the first folder
that holds them among those named by ``HPO_DATA`` (colon separated; each may hold the files
directly or in a ``<name>/`` subfolder), then the system folder
``/usr/share/datasets/<name>`` that Debian's ``dataset-fashion-mnist`` fills.

Read: MNIST-style IDX files (optionally gzipped) and CIFAR-10's python pickle batches, into
uint8 images (N, C, H, W) and int64 labels; anything malformed is one DataError line.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np

from hpo.errors import DataError

# IDX stem names; each file may also be gzipped (`.gz`).
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
CIFAR_SUBDIR = "cifar-10-batches-py"  # the folder the official archive unpacks to

# IDX type byte -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

# --- where the files are ------------------------------------------------------------------------

SYSTEM_DATA_ROOT = Path("/usr/share/datasets")  # where Debian's dataset-* packages install
DATA_PATH_ENV = "HPO_DATA"  # colon-separated folders searched for the file data sets
# Debian package per data set (`apt-cache search dataset-` lists only this one so far).
SYSTEM_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist"}

# What a file data set needs, for the error messages.
_WANTS = {
    "mnist": "with " + ", ".join(f"{f}[.gz]" for f in IDX_FILES),
    "fashion-mnist": "with " + ", ".join(f"{f}[.gz]" for f in IDX_FILES),
    "cifar10": f"with {', '.join(CIFAR_FILES)} (or its {CIFAR_SUBDIR}/ parent)",
}


def candidate_dirs(
    name: str,
    data_dir: str | Path | None,
    env: Mapping[str, str],
    *,
    system_root: Path = SYSTEM_DATA_ROOT,
) -> list[Path]:
    """The folders that may hold ``name``'s files, in the order they are tried.

    An explicit ``data_dir`` is the only candidate. Otherwise each ``HPO_DATA`` entry is
    tried as ``ENTRY/name`` then ``ENTRY`` (the subfolder first: a folder shared by several
    data sets must not hand one data set's files to another), then ``system_root/name``.
    """
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    folders: list[Path] = []
    for entry in env.get(DATA_PATH_ENV, "").split(os.pathsep):
        if entry:
            root = Path(entry).expanduser()
            folders += [root / name, root]
    return [*folders, system_root / name]


def find_data_dir(name: str, data_dir: str | Path | None) -> Path:
    """The folder to read ``name`` from (see ``candidate_dirs``), or one DataError line."""
    folders = candidate_dirs(name, data_dir, os.environ, system_root=SYSTEM_DATA_ROOT)
    if data_dir is not None:
        if not folders[0].is_dir():
            raise DataError(
                f"{name}: data dir {folders[0]} does not exist; point --data-dir "
                f"(or data.dir in the study file) at a folder {_WANTS[name]}"
            )
        return folders[0]  # the reader names any file missing there
    for folder in folders:
        if _holds(name, folder):
            return folder
    searched = ", ".join(str(f) for f in folders)
    if not os.environ.get(DATA_PATH_ENV):
        searched += f" ({DATA_PATH_ENV} is not set)"
    package = SYSTEM_PACKAGES.get(name)
    install = f"install them with `apt-get install {package}`, or " if package else ""
    raise DataError(
        f"{name} needs --data-dir (or data.dir in the study file, or {DATA_PATH_ENV}): its "
        f"files are not in {searched}; {install}point one of them at a folder {_WANTS[name]}"
    )


def _holds(name: str, folder: Path) -> bool:
    """Whether ``folder`` has every file of ``name`` (cheap: names only, nothing read)."""
    if name == "cifar10":
        return any(
            all((f / n).is_file() for n in CIFAR_FILES) for f in (folder, folder / CIFAR_SUBDIR)
        )
    return all(_find_idx(folder, stem) is not None for stem in IDX_FILES)


def read_files(name: str, data_dir: str | Path | None) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """((train images, labels), (test images, labels)) as uint8 (N, C, H, W) and int64."""
    folder = find_data_dir(name, data_dir)
    return _cifar10(folder) if name == "cifar10" else _mnist(name, folder)


def _mnist(name: str, folder: Path) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    found = {stem: _find_idx(folder, stem) for stem in IDX_FILES}
    missing = [f"{stem}[.gz]" for stem, path in found.items() if path is None]
    if missing:
        raise DataError(f"{name}: missing {', '.join(missing)} in {folder}")
    paths = [found[stem] for stem in IDX_FILES]
    train = _idx_pair(paths[0], paths[1])
    test = _idx_pair(paths[2], paths[3])
    if train[0].shape[1:] != test[0].shape[1:]:
        raise DataError(
            f"{name}: train images are {train[0].shape[2:]} but test images {test[0].shape[2:]}"
        )
    return train, test


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, H, W) uint8 and labels (N,) int64 from two IDX files."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{images_path}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected 1-D labels, got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path.name} has {len(images)} images but {labels_path.name} has "
            f"{len(labels)} labels; the two files must come from the same release"
        )
    return images[:, None], labels.astype(np.int64)


def _cifar10(folder: Path) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    if (folder / CIFAR_SUBDIR).is_dir():
        folder = folder / CIFAR_SUBDIR
    missing = [f for f in CIFAR_FILES if not (folder / f).is_file()]
    if missing:
        raise DataError(f"cifar10: missing {', '.join(missing)} in {folder}")
    batches = [read_cifar_batch(folder / f) for f in CIFAR_FILES[:-1]]
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    return (x, y), read_cifar_batch(folder / CIFAR_FILES[-1])


# --- readers -------------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzipped if the name ends in ``.gz``) into a native-endian array.

    Layout: two zero bytes, a type byte, the number of dimensions, one big-endian
    uint32 per dimension, then the values, big-endian, row-major.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(
            f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'}, expected "
            "0000 then a type byte 08/09/0b/0c/0d/0e); is it the right file, or still an archive?"
        )
    ndim = raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise DataError(f"{path}: IDX header truncated ({len(raw)} bytes); download the file again")
    dims = struct.unpack(f">{ndim}I", raw[4:offset])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = offset + math.prod(dims) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"{path}: IDX size mismatch: header says shape {dims} ({expected} bytes) but the "
            f"file holds {len(raw)} bytes; it is truncated or corrupt, download it again"
        )
    array = np.frombuffer(raw, dtype=dtype, offset=offset).reshape(dims)
    return array.astype(dtype.newbyteorder("="))  # a writable copy in native byte order


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: cannot read ({err}); download the file again") from None


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and numpy arrays.

    A pickle can run any code on load; the CIFAR batches need nothing beyond numpy's
    array reconstruction, so anything else is refused rather than executed.
    """

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),  # pickles written by numpy < 2
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),  # protocol 5
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # how protocol 2 stores bytes
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch -> images (N, 3, 32, 32) uint8, labels (N,) int64."""
    path = Path(path)
    raw = _read_bytes(path)
    try:
        batch = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as err:  # any unpickling failure means: not a usable batch file
        raise DataError(f"{path}: not a CIFAR-10 python batch ({err})") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{path}: not a CIFAR-10 python batch (no b'data'/b'labels' entries)")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(
            f"{path}: expected uint8 data of shape (N, 3072), got {data.dtype} {data.shape}"
        )
    if labels.shape != (len(data),):
        raise DataError(f"{path}: {len(data)} images but {labels.size} labels")
    return data.reshape(-1, 3, 32, 32), labels
