"""Datasets as tensors, ready to be moved to the device once and sliced there.

Five datasets, all classification:

- ``digits``: scikit-learn's bundled 8x8 digits (1797 images, no download).
- ``rings``: synthetic 2-D concentric rings, generated here.
- ``mnist`` / ``fashion-mnist``: the four IDX files in ``data_dir``.
- ``cifar10``: the python pickle batches in ``data_dir``.

Splits are stratified and depend on ``seed`` only, so every trial of a study
(and every worker) sees exactly the same train/val/test data. ``digits`` and
``rings`` hold out ``val_fraction`` of the data for validation and the same
fraction again for test (60/20/20 by default); the file datasets split their
training file into train/val and use their official test file as test.

Pixels are scaled to [0, 1] and then standardized per channel (per feature for
``rings``) with the mean and std of the train split only, so nothing about the
val/test data leaks into training.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import math
import pickle
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from hpo.errors import HpoError

DATASETS: tuple[str, ...] = ("digits", "rings", "mnist", "fashion-mnist", "cifar10")

RINGS_SIZE = 2000  # points in the rings data set, half per ring
RINGS_RADII = (1.0, 2.0)  # ring radii; label = index of the ring
RINGS_NOISE = 0.3  # std of the radius noise: rings overlap a little, best accuracy ~95%
RINGS_DATA_SEED = 20240  # the rings data are fixed; only the split follows `seed`

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


class DataError(HpoError):
    """One clear line: what is missing/wrong and how to fix it (the CLI prints it as is)."""


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # float32; images (N, C, H, W), vectors (N, D)
    y: torch.Tensor  # int64 class labels, shape (N,)

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass(frozen=True)
class Dataset:
    name: str  # one of DATASETS
    train: Split  # fit on this; also the source of the normalization statistics
    val: Split  # report/prune on this
    test: Split  # held out; touched only for the final report
    in_shape: tuple[int, ...]  # per-sample shape, e.g. (1, 8, 8) or (2,)
    num_classes: int

    def to(self, device: torch.device | str) -> Dataset:
        """All tensors moved once; training then slices batches on the device."""
        return dataclasses.replace(
            self, train=self.train.to(device), val=self.val.to(device), test=self.test.to(device)
        )


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    seed: int = 0,
    val_fraction: float = 0.2,
    max_train: int | None = None,
) -> Dataset:
    """Load a dataset as standardized CPU tensors.

    Args:
        name: One of ``DATASETS``.
        data_dir: Folder with the files of ``mnist``, ``fashion-mnist`` or ``cifar10``;
            ignored by ``digits`` and ``rings``.
        seed: The only input of the split: same seed, same split.
        val_fraction: Fraction held out for validation (and, for ``digits``/``rings``,
            the same fraction again for test). Must be in (0, 0.5).
        max_train: Optional cap on the train split (a seeded, stratified subset) for fast
            runs; val and test do not change with it.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if not 0.0 < val_fraction < 0.5:
        raise DataError(f"val_fraction must be in (0, 0.5), got {val_fraction}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    if max_train is not None and (not isinstance(max_train, int) or max_train < 1):
        raise DataError(f"max_train must be a positive integer or None, got {max_train}")

    if name in ("digits", "rings"):
        x, y, scale = _digits() if name == "digits" else (*make_rings(), 1.0)
        n_held = _count(len(y), val_fraction, name)
        val_idx, test_idx, train_idx = stratified_split(y, [n_held, n_held], seed=seed)
        x_test, y_test = x[test_idx], y[test_idx]
        num_classes = 10 if name == "digits" else len(RINGS_RADII)
    else:
        (x, y), (x_test, y_test) = _read_files(name, data_dir)
        scale, num_classes = 255.0, 10
        _check_labels(name, y, num_classes)
        _check_labels(name, y_test, num_classes)
        val_idx, train_idx = stratified_split(y, [_count(len(y), val_fraction, name)], seed=seed)

    if max_train is not None and max_train < len(train_idx):
        # Own stream (seed, 1) so the subset is not a by-product of the split's draws.
        subset, _ = stratified_split(y[train_idx], [max_train], seed=(seed, 1))
        train_idx = train_idx[subset]

    xs = [to_unit(a, scale) for a in (x[train_idx], x[val_idx], x_test)]
    mean, std = channel_stats(xs[0])
    for a in xs:
        standardize_(a, mean, std)
    ys = [y[train_idx], y[val_idx], y_test]
    train, val, test = (Split(a, torch.from_numpy(b)) for a, b in zip(xs, ys, strict=True))
    return Dataset(name, train, val, test, tuple(int(d) for d in xs[0].shape[1:]), num_classes)


# --- splitting -----------------------------------------------------------------------------


def stratified_split(
    labels: np.ndarray, sizes: Sequence[int], *, seed: int | tuple[int, ...]
) -> list[np.ndarray]:
    """Seeded stratified split of ``range(len(labels))``.

    Returns one index array per requested size, in order, then the rest. Each part
    takes from every class in proportion to what that class has left (largest
    remainder rounding), so the sizes are exact and class balance is kept to within
    one sample per class. Indices within a part are shuffled, so any prefix of a part
    is itself a random sample.
    """
    labels = np.asarray(labels)
    if sum(sizes) > len(labels) or min(sizes, default=0) < 0:
        raise ValueError(f"cannot take parts of sizes {list(sizes)} from {len(labels)} samples")
    rng = np.random.default_rng(seed)
    _, inverse = np.unique(labels, return_inverse=True)
    pools = [rng.permutation(np.flatnonzero(inverse == k)) for k in range(inverse.max() + 1)]
    parts = []
    for size in [*sizes, None]:
        counts = (
            [len(p) for p in pools] if size is None else _apportion([len(p) for p in pools], size)
        )
        part = np.concatenate([p[:c] for p, c in zip(pools, counts, strict=True)]).astype(np.int64)
        parts.append(rng.permutation(part))
        pools = [p[c:] for p, c in zip(pools, counts, strict=True)]
    return parts


def _apportion(counts: Sequence[int], total: int) -> list[int]:
    """Split ``total`` over classes proportionally to ``counts``, each share <= its count."""
    whole = sum(counts)
    quotas = [c * total for c in counts]  # integer arithmetic: exact, no float rounding
    shares = [q // whole for q in quotas]
    # Hand the leftover units to the largest remainders; ties go to the lower class.
    order = sorted(range(len(counts)), key=lambda k: -(quotas[k] % whole))
    for k in order[: total - sum(shares)]:
        shares[k] += 1
    return shares


def _count(n: int, fraction: float, name: str) -> int:
    k = math.floor(n * fraction + 0.5)
    if k < 1:
        raise DataError(f"{name}: {n} samples are too few for val_fraction={fraction}")
    return k


# --- normalization -------------------------------------------------------------------------


def to_unit(x: np.ndarray, max_value: float) -> torch.Tensor:
    """Scale raw values (pixels) into [0, 1] as a new float32 tensor."""
    return torch.from_numpy(x).to(torch.float32, copy=True).div_(max_value)


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (dim 1) mean and std, shaped to broadcast against ``x``.

    torch rather than numpy: its reductions are multi-threaded and accurate on float32
    (within ~1e-8 of a float64 computation), so 50k CIFAR images need no float64 copy.
    A constant channel gets std 1 so standardizing never divides by zero.
    """
    dims = [d for d in range(x.ndim) if d != 1]
    var, mean = torch.var_mean(x, dim=dims, correction=0, keepdim=True)
    std = var.sqrt()
    return mean, std.masked_fill(std < 1e-8, 1.0)


def standardize_(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """In place, so a big split is not copied again."""
    return x.sub_(mean).div_(std)


# --- embedded data sets --------------------------------------------------------------------


def _digits() -> tuple[np.ndarray, np.ndarray, float]:
    from sklearn.datasets import load_digits  # lazy: sklearn is slow to import

    bunch = load_digits()
    x = bunch.images[:, None].astype(np.uint8)  # (1797, 1, 8, 8), values 0..16
    return x, bunch.target.astype(np.int64), 16.0


def make_rings(
    n: int = RINGS_SIZE, *, seed: int = RINGS_DATA_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Two noisy concentric rings in 2-D: (x float32 (n, 2), y int64 ring index)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n, dtype=np.int64) % len(RINGS_RADII)
    radius = np.asarray(RINGS_RADII)[y] + rng.normal(0.0, RINGS_NOISE, n)
    angle = rng.uniform(0.0, 2 * np.pi, n)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    return x.astype(np.float32), y


# --- file data sets ------------------------------------------------------------------------

# What a file data set needs, for the error messages.
_WANTS = {
    "mnist": "with " + ", ".join(f"{f}[.gz]" for f in IDX_FILES),
    "fashion-mnist": "with " + ", ".join(f"{f}[.gz]" for f in IDX_FILES),
    "cifar10": f"with {', '.join(CIFAR_FILES)} (or its {CIFAR_SUBDIR}/ parent)",
}


def _read_files(
    name: str, data_dir: str | Path | None
) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """((train images, labels), (test images, labels)) as uint8 (N, C, H, W) and int64."""
    if data_dir is None:
        raise DataError(
            f"{name} needs --data-dir (or data.dir in the study file) "
            f"pointing at a folder {_WANTS[name]}"
        )
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        raise DataError(
            f"{name}: data dir {folder} does not exist; point --data-dir "
            f"(or data.dir in the study file) at a folder {_WANTS[name]}"
        )
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


def _check_labels(name: str, y: np.ndarray, num_classes: int) -> None:
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(
            f"{name}: labels must be in 0..{num_classes - 1}, found {y.min()}..{y.max()}; "
            "are these the right files?"
        )


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
