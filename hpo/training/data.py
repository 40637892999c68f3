"""Datasets as tensors, ready to be moved to the device once and sliced there.

Five datasets, all classification:

- ``digits``: scikit-learn's bundled 8x8 digits (1797 images, no download).
- ``rings``: synthetic 2-D concentric rings, generated here.
- ``mnist`` / ``fashion-mnist``: the four IDX files (found by hpo.training.datafiles).
- ``cifar10``: the python pickle batches, found the same way.

Splits are stratified and depend on ``seed`` only, so every trial of a study
(and every worker) sees exactly the same train/val/test data. ``digits`` and
``rings`` hold out ``val_fraction`` of the data for validation and the same
fraction again for test (60/20/20 by default); the file datasets split their
training file into train/val and use their official test file as test.

Pixels are scaled to [0, 1] and then standardized per channel (per feature for
``rings``) with the mean and std of the train split only, so nothing about the
val/test data leaks into training. Images are kept as their raw uint8 pixels (a quarter
of the memory of float32, on the device too) and standardized batch by batch as they are
sliced (``Split.inputs`` / ``Split.batch``), as airbench does; ``rings`` is standardized
once, as float32.

Where the files are found and how they are read: hpo.training.datafiles.

A user's own data (``folder``, ``npz``, ``csv``) arrive as arrays (hpo.training.userdata)
and go through the same split, standardization and caps: with a test part of their own like
the file sets, without one like ``digits``. Each class needs 2 examples at least.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hpo.config.vocabulary import DATASETS, USER_DATASETS
from hpo.errors import DataError
from hpo.training.datafiles import read_files
from hpo.training.userarrays import UserArrays

RINGS_SIZE = 2000  # points in the rings data set, half per ring
RINGS_RADII = (1.0, 2.0)  # ring radii; label = index of the ring
RINGS_NOISE = 0.3  # std of the radius noise: rings overlap a little, best accuracy ~95%
RINGS_DATA_SEED = 20240  # the rings data are fixed; only the split follows `seed`
_DIGITS = tuple(str(d) for d in range(10))
# What each label means, for an exported model's users (model.json).
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "digits": _DIGITS,
    "mnist": _DIGITS,
    "rings": ("inner", "outer"),
    "fashion-mnist": (
        *("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"),
        *("Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "cifar10": (
        *("airplane", "automobile", "bird", "cat", "deer"),
        *("dog", "frog", "horse", "ship", "truck"),
    ),
}


@dataclass(frozen=True)
class Normalization:
    """How raw pixels become model inputs: ``(raw / scale - mean) / std`` per channel."""

    scale: float  # the raw value of full intensity (255; 16 for digits): raw / scale is in [0, 1]
    mean: torch.Tensor  # per-channel mean of the train split in [0, 1] units, shape (1, C, 1, 1)
    std: torch.Tensor  # per-channel std likewise; 1 for a constant channel

    def __call__(self, raw: torch.Tensor) -> torch.Tensor:
        # The float32 ops, in the order, of standardizing a whole split at load time, so the
        # values are the same; in place on the fresh float copy, so one batch-sized buffer.
        return raw.to(torch.float32).div_(self.scale).sub_(self.mean).div_(self.std)

    def to(self, device: torch.device | str) -> Normalization:
        return dataclasses.replace(self, mean=self.mean.to(device), std=self.std.to(device))


@dataclass(frozen=True)
class Split:
    """One split; slice it with ``inputs`` / ``batch``, which return model-ready inputs."""

    x: torch.Tensor  # stored samples: raw uint8 images (N, C, H, W) or float32 inputs (N, D)
    y: torch.Tensor  # int64 class labels, shape (N,)
    norm: Normalization | None = None  # turns the stored images into inputs; None: x already is
    # Set: x and y stay on the host (pinned on CUDA) and each batch is copied here; a data
    # set larger than the device's share trains batch by batch instead of running out.
    target: torch.device | None = None

    def __len__(self) -> int:
        return len(self.y)

    @property
    def device(self) -> torch.device:
        return self.x.device if self.target is None else self.target

    def inputs(self, index: slice | torch.Tensor = slice(None)) -> torch.Tensor:
        """Float32 model inputs of the samples at ``index`` (a slice or an index tensor).

        Float data come back as stored (a view for a slice): do not modify them in place.
        """
        x = self._take(self.x, index)
        return x if self.norm is None else self.norm(x)

    def batch(self, index: slice | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, labels) of the samples at ``index``."""
        return self.inputs(index), self._take(self.y, index)

    def _take(self, stored: torch.Tensor, index: slice | torch.Tensor) -> torch.Tensor:
        if self.target is None:
            return stored[index]
        if isinstance(index, torch.Tensor):
            index = index.to(stored.device)
        part = stored[index]  # a slice of pinned memory is pinned: copied asynchronously
        return part.to(self.target, non_blocking=part.is_pinned())

    def to(self, device: torch.device | str, *, on_host: bool = False) -> Split:
        """On `device`; `on_host`: kept on the host, batches sent to `device` as sliced."""
        norm = None if self.norm is None else self.norm.to(device)
        if not on_host:
            return Split(self.x.to(device), self.y.to(device), norm)
        x, y = self.x.cpu(), self.y.cpu()
        if torch.device(device).type == "cuda":
            with contextlib.suppress(RuntimeError):  # pinning can fail: pageable then
                x, y = x.pin_memory(), y.pin_memory()
        return Split(x, y, norm, torch.device(device))


@dataclass(frozen=True)
class Dataset:
    name: str  # one of DATASETS
    train: Split  # fit on this; also the source of the normalization statistics
    val: Split  # report/prune on this
    test: Split  # held out; touched only for the final report
    in_shape: tuple[int, ...]  # per-sample shape, e.g. (1, 8, 8) or (2,)
    num_classes: int
    # Float data: the standardization already applied to every split (images: None, their
    # splits carry it); kept so that an exported model can take raw features.
    features: Normalization | None = None
    class_names: tuple[str, ...] | None = None  # a user's data: sorted; built-in: CLASS_NAMES
    # A user's data: kind, path, examples per split, hash (stored with the study; userdata).
    identity: dict[str, Any] | None = None

    @property
    def raw_inputs(self) -> Normalization:
        """How raw samples (pixels, raw features) become model inputs."""
        norm = self.train.norm or self.features
        assert norm is not None, "load_dataset sets one of the two"
        return norm

    def with_validation_in_train(self) -> Dataset:
        """Train and validation as one training split, for a final fit (`hpo retrain`).

        The standardization stays the train split's: the one the searched models were fit
        with. The validation split stays too, only to be reported on.
        """
        x = torch.cat([self.train.x, self.val.x])
        y = torch.cat([self.train.y, self.val.y])
        return dataclasses.replace(self, train=Split(x, y, self.train.norm))

    @property
    def nbytes(self) -> int:
        splits = (self.train, self.val, self.test)
        return sum(t.element_size() * t.nelement() for s in splits for t in (s.x, s.y))

    def to(self, device: torch.device | str, *, max_device_bytes: int | None = None) -> Dataset:
        """All tensors moved once; training then slices batches on the device.

        A data set above `max_device_bytes` stays on the host and goes to the device batch
        by batch (Split.target): slower, never out of memory.
        """
        on_host = max_device_bytes is not None and self.nbytes > max_device_bytes
        return dataclasses.replace(
            self,
            train=self.train.to(device, on_host=on_host),
            val=self.val.to(device, on_host=on_host),
            test=self.test.to(device, on_host=on_host),
        )


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    seed: int = 0,
    val_fraction: float = 0.2,
    max_train: int | None = None,
    max_val: int | None = None,
    user: UserArrays | None = None,
) -> Dataset:
    """Load a dataset as CPU tensors (images raw uint8, standardized when sliced).

    Args:
        name: One of ``DATASETS``.
        data_dir: Folder with the files of ``mnist``, ``fashion-mnist`` or ``cifar10``;
            None: search ``HPO_DATA`` and the system folder (see the module docstring).
            Ignored by ``digits`` and ``rings``.
        seed: The only input of the split: same seed, same split.
        val_fraction: Fraction held out for validation (and, for ``digits``/``rings``,
            the same fraction again for test). Must be in (0, 0.5).
        max_train: Optional cap on the train split (a seeded, stratified subset) for fast
            runs; val and test do not change with it.
        max_val: Optional cap on the validation split, likewise: evaluating it every epoch
            dominates small trials. Train (and so the statistics) and test do not change.
        user: The arrays of a user's data set (name folder, npz or csv;
            hpo.training.userdata.read_user_data), split like the built-in sets: with a test
            part like the file sets, without one like digits.
    """
    if name in USER_DATASETS:
        if user is None:
            raise DataError(f"data {name!r} needs its arrays (hpo.training.userdata)")
    elif name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if not 0.0 < val_fraction < 0.5:
        raise DataError(f"val_fraction must be in (0, 0.5), got {val_fraction}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    for key, cap in (("max_train", max_train), ("max_val", max_val)):
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise DataError(f"{key} must be a positive integer or None, got {cap}")

    class_names = None
    if user is not None:
        x, y, scale = user.x, user.y, (255.0 if user.kind == "images" else None)
        class_names, num_classes = user.class_names, len(user.class_names)
        if user.x_test is None or user.y_test is None:
            n_held = _count(len(y), val_fraction, name)
            _enough(user.origin or name, y, 2 * n_held, class_names)
            val_idx, test_idx, train_idx = stratified_split(y, [n_held, n_held], seed=seed)
            x_test, y_test = x[test_idx], y[test_idx]
        else:
            x_test, y_test = user.x_test, user.y_test
            n_held = _count(len(y), val_fraction, name)
            _enough(user.origin or name, y, n_held, class_names)
            val_idx, train_idx = stratified_split(y, [n_held], seed=seed)
        if scale is None:
            x, x_test = x.astype(np.float32), x_test.astype(np.float32)
    elif name in ("digits", "rings"):
        x, y, scale = _digits() if name == "digits" else (*make_rings(), None)
        n_held = _count(len(y), val_fraction, name)
        val_idx, test_idx, train_idx = stratified_split(y, [n_held, n_held], seed=seed)
        x_test, y_test = x[test_idx], y[test_idx]
        num_classes = 10 if name == "digits" else len(RINGS_RADII)
    else:
        (x, y), (x_test, y_test) = read_files(name, data_dir)
        scale, num_classes = 255.0, 10
        _check_labels(name, y, num_classes)
        _check_labels(name, y_test, num_classes)
        val_idx, train_idx = stratified_split(y, [_count(len(y), val_fraction, name)], seed=seed)

    # Each cap draws from its own stream, so neither is a by-product of the split's draws
    # and capping one split never changes the samples of another.
    if max_train is not None and max_train < len(train_idx):
        subset, _ = stratified_split(y[train_idx], [max_train], seed=(seed, 1))
        train_idx = train_idx[subset]
    if max_val is not None and max_val < len(val_idx):
        subset, _ = stratified_split(y[val_idx], [max_val], seed=(seed, 2))
        val_idx = val_idx[subset]

    raw = [x[train_idx], x[val_idx], x_test]
    ys = [torch.from_numpy(a) for a in (y[train_idx], y[val_idx], y_test)]
    features = None
    if scale is None:  # float vectors: standardized once, here; they are small
        xs = [to_unit(a, 1.0) for a in raw]
        mean, std = channel_stats(xs[0])
        for a in xs:
            standardize_(a, mean, std)
        splits = [Split(a, b) for a, b in zip(xs, ys, strict=True)]
        features = Normalization(1.0, mean, std)
    else:  # images: kept raw; the statistics come from a float copy of train, then dropped
        norm = Normalization(scale, *channel_stats(to_unit(raw[0], scale)))
        splits = [Split(torch.from_numpy(a), b, norm) for a, b in zip(raw, ys, strict=True)]
    in_shape = tuple(int(d) for d in raw[0].shape[1:])
    return Dataset(name, *splits, in_shape, num_classes, features, class_names)


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


def _enough(name: str, y: np.ndarray, held: int, class_names: Sequence[str]) -> None:
    """DataError unless each part of the split gets an example and train every class."""
    counts = np.bincount(y, minlength=len(class_names))
    if len(y) - held < len(class_names) or (counts < 2).any():
        few = int(np.argmin(counts))
        raise DataError(
            f"{name}: {len(y)} examples are too few for the split (val_fraction and a test "
            f"part): class {class_names[few]!r} has {counts[few]}; each class needs at least 2"
        )


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


def _check_labels(name: str, y: np.ndarray, num_classes: int) -> None:
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(
            f"{name}: labels must be in 0..{num_classes - 1}, found {y.min()}..{y.max()}; "
            "are these the right files?"
        )
