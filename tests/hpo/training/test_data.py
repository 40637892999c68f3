"""hpo.training.data and hpo.training.datafiles: readers on files written here and on the real Fashion-MNIST,
splits, standardization, where the files are found, errors."""

from __future__ import annotations

import gzip
import pickle
import struct
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import hpo.training.datafiles
from hpo.config.spec import parse_spec
from hpo.errors import DataError, SpecError
from hpo.training.data import (
    DATASETS,
    Dataset,
    Split,
    channel_stats,
    load_dataset,
    make_rings,
    standardize_,
    stratified_split,
    to_unit,
)
from hpo.training.datafiles import (
    CIFAR_FILES,
    CIFAR_SUBDIR,
    DATA_PATH_ENV,
    IDX_FILES,
    SYSTEM_DATA_ROOT,
    candidate_dirs,
    find_data_dir,
    read_cifar_batch,
    read_idx,
)
from tests.helpers import run_hpo, study_text

FASHION = SYSTEM_DATA_ROOT / "fashion-mnist"  # installed by dataset-fashion-mnist (.ci/run)

# --- helpers -------------------------------------------------------------------------------

_IDX_TYPE = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D}


def write_idx(path: Path, array: np.ndarray) -> Path:
    """The IDX layout: 00 00 type ndim, big-endian uint32 dims, big-endian values."""
    code = _IDX_TYPE[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def balanced_labels(n: int, classes: int = 10) -> np.ndarray:
    return (np.arange(n) % classes).astype(np.uint8)


def write_mnist(folder: Path, n_train: int = 50, n_test: int = 20, side: int = 28) -> Path:
    """Tiny MNIST-like folder; half the files gzipped to cover both spellings."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "train-labels-idx1-ubyte": balanced_labels(n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": balanced_labels(n_test),
    }
    for name, array in arrays.items():
        write_idx(folder / name, array)
    return folder


def write_cifar_batch(path: Path, data: np.ndarray, labels: list[int]) -> Path:
    batch = {b"batch_label": b"fake", b"data": data, b"labels": labels}
    path.write_bytes(pickle.dumps(batch, protocol=2))  # protocol 2, like the official files
    return path


def write_cifar(root: Path, per_batch: int = 20, n_test: int = 10) -> Path:
    """Fake cifar-10-batches-py/ under ``root``; test images brighter than train ones."""
    rng = np.random.default_rng(1)
    folder = root / CIFAR_SUBDIR
    folder.mkdir(parents=True)
    for name in CIFAR_FILES[:-1]:
        data = rng.integers(0, 128, (per_batch, 3072), dtype=np.uint8)
        write_cifar_batch(folder / name, data, balanced_labels(per_batch).tolist())
    test = rng.integers(128, 256, (n_test, 3072), dtype=np.uint8)
    write_cifar_batch(folder / CIFAR_FILES[-1], test, balanced_labels(n_test).tolist())
    return root


def assert_train_standardized(ds: Dataset) -> None:
    """Train split: mean 0 and std 1 per channel (axis 1)."""
    inputs = ds.train.inputs()
    x = inputs.double().transpose(0, 1).reshape(inputs.shape[1], -1)
    assert torch.allclose(x.mean(1), torch.zeros(len(x), dtype=torch.float64), atol=1e-4)
    assert torch.allclose(
        x.std(1, correction=0), torch.ones(len(x), dtype=torch.float64), atol=1e-3
    )


def assert_well_formed(ds: Dataset, in_shape: tuple[int, ...], num_classes: int) -> None:
    assert ds.in_shape == in_shape
    assert ds.num_classes == num_classes
    images = len(in_shape) == 3  # kept as raw 8-bit pixels; vectors as float32 inputs
    for split in (ds.train, ds.val, ds.test):
        assert split.x.dtype == (torch.uint8 if images else torch.float32)
        assert split.y.dtype == torch.int64
        assert split.x.shape == (len(split.y), *in_shape)
        assert split.inputs().dtype == torch.float32
        assert split.inputs().shape == split.x.shape
        assert int(split.y.min()) >= 0 and int(split.y.max()) < num_classes


def fit_affine(z: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the affine map that takes standardized ``z`` back to ``raw``.

    ``z`` must hold all samples of all splits. If every split was standardized with
    the same (train) statistics, sorting a column puts its values in the order of the
    raw values and a straight line fits exactly; standardizing a split with its own
    statistics would break the fit.
    """
    slopes, intercepts = np.empty(z.shape[1]), np.empty(z.shape[1])
    for j in range(z.shape[1]):
        zs, rs = np.sort(z[:, j]), np.sort(raw[:, j])
        slopes[j], intercepts[j] = np.polyfit(zs, rs, 1)
        assert np.abs(zs * slopes[j] + intercepts[j] - rs).max() < 1e-4
    return slopes, intercepts


def concat(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    parts = (ds.train, ds.val, ds.test)
    return torch.cat([p.inputs() for p in parts]).numpy(), torch.cat([p.y for p in parts]).numpy()


def sorted_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    rows = np.column_stack([y, x])
    return rows[np.lexsort(rows.T[::-1])]


# --- read_idx ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([3, 1, 4, 1, 5], dtype=np.uint8),
        np.arange(-12, 12, dtype=np.int32).reshape(2, 3, 2, 2),
        np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2),
    ],
    ids=["images-3d", "labels-1d", "int32-4d", "float32-2d"],
)
def test_read_idx_round_trips(tmp_path: Path, array: np.ndarray, suffix: str) -> None:
    out = read_idx(write_idx(tmp_path / f"file-idx{suffix}", array))
    assert out.dtype == array.dtype and out.dtype.isnative
    np.testing.assert_array_equal(out, array)
    out[...] = 0  # a writable copy, not a view of the file's bytes


def test_read_idx_bad_magic(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    path.write_bytes(b"\x1f\x8b\x08\x00" + bytes(12))  # a gzip header under a plain name
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(path)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_truncated(tmp_path: Path, suffix: str) -> None:
    path = write_idx(tmp_path / f"images{suffix}", np.zeros((4, 5, 5), dtype=np.uint8))
    if suffix:
        payload = gzip.decompress(path.read_bytes())[:-7]
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DataError, match="size mismatch"):
        read_idx(path)


def test_read_idx_truncated_gzip_stream(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "images.gz", np.zeros((4, 5, 5), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="cannot read"):
        read_idx(path)


# --- read_cifar_batch ----------------------------------------------------------------------


def test_read_cifar_batch(tmp_path: Path) -> None:
    data = np.arange(4 * 3072, dtype=np.int64).astype(np.uint8).reshape(4, 3072)
    images, labels = read_cifar_batch(write_cifar_batch(tmp_path / "b", data, [0, 9, 3, 3]))
    assert images.shape == (4, 3, 32, 32) and images.dtype == np.uint8
    # Row layout of the official files: 1024 red, then 1024 green, then 1024 blue values.
    np.testing.assert_array_equal(images[1, 2].ravel(), data[1, 2048:])
    np.testing.assert_array_equal(labels, [0, 9, 3, 3])
    assert labels.dtype == np.int64


def test_read_cifar_batch_rejects_wrong_content(tmp_path: Path) -> None:
    path = tmp_path / "b"
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(DataError, match=r"\(N, 3072\)"):
        read_cifar_batch(path)
    path.write_bytes(pickle.dumps({b"labels": [0, 1]}))
    with pytest.raises(DataError, match="not a CIFAR-10 python batch"):
        read_cifar_batch(path)


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pickle payload ran",))


def test_read_cifar_batch_refuses_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "evil"
    path.write_bytes(pickle.dumps({b"data": _Payload(), b"labels": []}))
    with pytest.raises(DataError, match=r"refusing to load builtins\.print"):
        read_cifar_batch(path)
    assert "payload ran" not in capsys.readouterr().out


# --- load_dataset: cifar10 -----------------------------------------------------------------


@pytest.mark.parametrize("nested", [True, False])
def test_load_cifar10(tmp_path: Path, nested: bool) -> None:
    root = write_cifar(tmp_path)
    ds = load_dataset("cifar10", data_dir=root if nested else root / CIFAR_SUBDIR, seed=3)
    assert_well_formed(ds, (3, 32, 32), 10)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (80, 20, 10)
    assert torch.bincount(ds.val.y, minlength=10).tolist() == [2] * 10  # stratified
    assert_train_standardized(ds)
    # Test images are brighter than all train images: standardized with the train
    # statistics they sit far above 0; with their own statistics they would sit at 0.
    assert ds.test.inputs().mean() > 1.0


def test_load_cifar10_missing_files(tmp_path: Path) -> None:
    root = write_cifar(tmp_path)
    (root / CIFAR_SUBDIR / "data_batch_4").unlink()
    with pytest.raises(DataError, match=f"missing data_batch_4 in .*{CIFAR_SUBDIR}"):
        load_dataset("cifar10", data_dir=root)


# --- load_dataset: mnist / fashion-mnist ---------------------------------------------------


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_load_mnist_like(tmp_path: Path, name: str) -> None:
    ds = load_dataset(name, data_dir=write_mnist(tmp_path), seed=0)
    assert ds.name == name
    assert_well_formed(ds, (1, 28, 28), 10)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (40, 10, 20)
    assert torch.bincount(ds.val.y, minlength=10).tolist() == [1] * 10
    assert_train_standardized(ds)


def test_load_mnist_test_set_is_t10k(tmp_path: Path) -> None:
    folder = write_mnist(tmp_path)
    test_images = read_idx(folder / "t10k-images-idx3-ubyte")
    ds = load_dataset("mnist", data_dir=folder)
    # Same images in the same order, up to the one affine map of the standardization.
    raw = test_images.reshape(len(test_images), -1).astype(np.float64)
    z = ds.test.inputs().reshape(len(ds.test), -1).double().numpy()
    slope, intercept = np.polyfit(raw.ravel(), z.ravel(), 1)
    np.testing.assert_allclose(raw * slope + intercept, z, atol=1e-4)


@pytest.fixture
def no_system_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No HPO_DATA and an empty system folder: nothing to be found unless a test adds it."""
    root = tmp_path / "system"
    root.mkdir()
    monkeypatch.setattr(hpo.training.datafiles, "SYSTEM_DATA_ROOT", root)
    monkeypatch.delenv(DATA_PATH_ENV, raising=False)
    return root


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_missing_data_is_one_line_naming_where_and_the_fix(name: str, no_system_data) -> None:
    with pytest.raises(DataError) as err:
        load_dataset(name)
    message = str(err.value)
    assert message.startswith(
        f"{name} needs --data-dir (or data.dir in the study file, or {DATA_PATH_ENV}): "
        f"its files are not in {no_system_data / name}"
    )
    assert f"{DATA_PATH_ENV} is not set" in message
    assert all(f"{stem}[.gz]" in message for stem in IDX_FILES)
    assert "\n" not in message
    # Only Fashion-MNIST has a Debian package to point at.
    assert ("apt-get install dataset-fashion-mnist" in message) == (name == "fashion-mnist")


def test_missing_data_names_the_hpo_data_folders(
    tmp_path: Path, no_system_data, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATA_PATH_ENV, f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    with pytest.raises(DataError) as err:
        load_dataset("cifar10")
    message = str(err.value)
    for folder in (tmp_path / "a" / "cifar10", tmp_path / "a", tmp_path / "b"):
        assert f"{folder}," in message
    assert "is not set" not in message and "apt-get" not in message


def test_candidate_dirs_order() -> None:
    system = Path("/sys-data")
    assert candidate_dirs("mnist", None, {}, system_root=system) == [system / "mnist"]
    env = {DATA_PATH_ENV: "/a::~/b"}  # an empty entry is skipped, ~ expanded
    home = Path("~").expanduser()
    assert candidate_dirs("mnist", None, env, system_root=system) == [
        Path("/a/mnist"),
        Path("/a"),
        home / "b" / "mnist",
        home / "b",
        system / "mnist",
    ]
    # An explicit folder is the only candidate: a wrong --data-dir is an error, not a search.
    assert candidate_dirs("mnist", "/x", env, system_root=system) == [Path("/x")]


def test_found_through_hpo_data_directly_or_in_a_subfolder(
    tmp_path: Path, no_system_data, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct = write_mnist(tmp_path / "direct")
    nested = write_mnist(tmp_path / "shared" / "mnist", n_train=30)
    monkeypatch.setenv(DATA_PATH_ENV, f"{tmp_path / 'empty'}:{tmp_path / 'shared'}:{direct}")
    assert find_data_dir("mnist", None) == nested  # the first folder that holds them
    assert len(load_dataset("mnist").train) == 24  # 30 - 6 val: the nested copy was read
    monkeypatch.setenv(DATA_PATH_ENV, str(direct))
    assert find_data_dir("mnist", None) == direct
    # A folder holding only some of the files is passed over.
    (nested / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv(DATA_PATH_ENV, f"{tmp_path / 'shared'}:{direct}")
    assert find_data_dir("mnist", None) == direct


def test_system_folder_is_the_last_resort(
    tmp_path: Path, no_system_data, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = write_mnist(no_system_data / "fashion-mnist")
    assert find_data_dir("fashion-mnist", None) == system
    preferred = write_mnist(tmp_path / "mine" / "fashion-mnist")
    monkeypatch.setenv(DATA_PATH_ENV, str(tmp_path / "mine"))
    assert find_data_dir("fashion-mnist", None) == preferred
    assert find_data_dir("fashion-mnist", system) == system  # an explicit folder wins


def test_mnist_data_dir_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"data dir {tmp_path / 'nope'} does not exist"):
        load_dataset("mnist", data_dir=tmp_path / "nope")


def test_mnist_missing_files_are_named(tmp_path: Path) -> None:
    folder = write_mnist(tmp_path)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    (folder / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError) as err:
        load_dataset("mnist", data_dir=folder)
    message = str(err.value)
    assert "train-images-idx3-ubyte[.gz]" in message and "t10k-labels-idx1-ubyte[.gz]" in message
    assert "train-labels" not in message and str(folder) in message


def test_mnist_count_mismatch(tmp_path: Path) -> None:
    folder = write_mnist(tmp_path)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", balanced_labels(19))
    with pytest.raises(DataError, match=r"20 images but t10k-labels-idx1-ubyte\.gz has 19 labels"):
        load_dataset("mnist", data_dir=folder)


def test_mnist_corrupt_file(tmp_path: Path) -> None:
    folder = write_mnist(tmp_path)
    path = folder / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte: IDX size mismatch"):
        load_dataset("mnist", data_dir=folder)


def test_mnist_labels_out_of_range(tmp_path: Path) -> None:
    folder = write_mnist(tmp_path)
    write_idx(folder / "train-labels-idx1-ubyte", np.full(50, 10, dtype=np.uint8))
    with pytest.raises(DataError, match=r"labels must be in 0\.\.9"):
        load_dataset("mnist", data_dir=folder)


# --- load_dataset: digits and rings --------------------------------------------------------


def test_digits_shapes_and_sizes() -> None:
    ds = load_dataset("digits")
    assert_well_formed(ds, (1, 8, 8), 10)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (1079, 359, 359)


def test_rings_shapes_and_sizes() -> None:
    ds = load_dataset("rings")
    assert_well_formed(ds, (2,), 2)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (1200, 400, 400)


def test_digits_splits_cover_the_data_with_train_statistics() -> None:
    ds = load_dataset("digits", seed=5)
    assert_train_standardized(ds)
    z, y = concat(ds)
    # All 64 pixels share one channel, hence one affine map: fit it on all values.
    bunch = load_digits()
    slope, intercept = fit_affine(z.reshape(-1, 1), bunch.images.reshape(-1, 1) / 16.0)
    raw = z * slope + intercept
    pixels = np.rint(raw.reshape(len(y), 64) * 16).astype(np.int64)
    # Disjoint and covering: the splits together are exactly the 1797 digits.
    np.testing.assert_array_equal(
        sorted_rows(pixels, y), sorted_rows(bunch.data.astype(np.int64), bunch.target)
    )


def test_rings_splits_cover_the_data_with_train_statistics() -> None:
    ds = load_dataset("rings", seed=5)
    assert_train_standardized(ds)
    z, y = concat(ds)
    raw_x, raw_y = make_rings()
    slope, intercept = fit_affine(z, raw_x)
    np.testing.assert_allclose(
        sorted_rows(z * slope + intercept, y), sorted_rows(raw_x, raw_y), atol=1e-4
    )


@pytest.mark.parametrize("name", ["digits", "rings"])
def test_split_is_determined_by_seed(name: str) -> None:
    a, b, c = (load_dataset(name, seed=s) for s in (7, 7, 8))
    for split in ("train", "val", "test"):
        sa, sb, sc = (getattr(d, split) for d in (a, b, c))
        assert torch.equal(sa.inputs(), sb.inputs()) and torch.equal(sa.y, sb.y)
        assert not torch.equal(sa.inputs(), sc.inputs())


@pytest.mark.parametrize("name", ["digits", "rings"])
def test_stratification_is_kept(name: str) -> None:
    ds = load_dataset(name, seed=2)
    _, y = concat(ds)
    overall = np.bincount(y) / len(y)
    for split in (ds.train, ds.val, ds.test):
        share = np.bincount(split.y.numpy(), minlength=len(overall)) / len(split)
        assert np.abs(share - overall).max() < 0.01


def test_max_train_caps_train_only() -> None:
    full = load_dataset("digits", seed=4)
    capped = load_dataset("digits", seed=4, max_train=200)
    assert len(capped.train) == 200
    counts = torch.bincount(capped.train.y, minlength=10)
    assert int(counts.min()) >= 19 and int(counts.max()) <= 21  # stratified subset
    assert_train_standardized(capped)
    assert torch.equal(full.val.y, capped.val.y) and torch.equal(full.test.y, capped.test.y)
    assert len(load_dataset("digits", seed=4, max_train=10_000).train) == len(full.train)


def test_max_train_does_not_change_heldout_samples() -> None:
    full, capped = load_dataset("rings", seed=4), load_dataset("rings", seed=4, max_train=100)
    for split in ("val", "test"):
        a, b = getattr(full, split), getattr(capped, split)
        assert torch.equal(a.y, b.y)
        # Other train statistics, so other values; but the same samples in the same
        # order, so one affine map per feature takes one to the other exactly.
        for j in range(2):
            slope, intercept = np.polyfit(a.x[:, j].numpy(), b.x[:, j].numpy(), 1)
            assert np.abs(a.x[:, j].numpy() * slope + intercept - b.x[:, j].numpy()).max() < 1e-4


# --- stratified_split ----------------------------------------------------------------------


def test_stratified_split_exact_sizes_disjoint_cover() -> None:
    labels = np.array([0] * 50 + [1] * 30 + [2] * 7)
    val, test, rest = stratified_split(labels, [17, 17], seed=0)
    assert (len(val), len(test), len(rest)) == (17, 17, 53)
    everything = np.concatenate([val, test, rest])
    np.testing.assert_array_equal(np.sort(everything), np.arange(len(labels)))
    for part in (val, test):
        counts = np.bincount(labels[part], minlength=3)
        np.testing.assert_allclose(counts, np.array([50, 30, 7]) * 17 / 87, atol=1.0)


def test_stratified_split_tiny_classes_never_overdrawn() -> None:
    labels = np.arange(10)  # one sample per class
    a, b, rest = stratified_split(labels, [3, 3], seed=1)
    assert (len(a), len(b), len(rest)) == (3, 3, 4)
    assert len(set(np.concatenate([a, b, rest]).tolist())) == 10


# --- errors and device -----------------------------------------------------------------


def test_unknown_dataset_lists_the_known_ones() -> None:
    with pytest.raises(DataError) as err:
        load_dataset("imagenet")
    assert all(name in str(err.value) for name in DATASETS)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"val_fraction": 0.0}, "val_fraction"),
        ({"val_fraction": 0.5}, "val_fraction"),
        ({"seed": -1}, "seed"),
        ({"max_train": 0}, "max_train"),
    ],
)
def test_bad_arguments(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(DataError, match=match):
        load_dataset("rings", **kwargs)


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_to_device(device: str | torch.device) -> None:
    ds = load_dataset("rings")
    moved = ds.to(device)
    assert isinstance(moved, Dataset) and moved.name == ds.name
    for split in ("train", "val", "test"):
        s = getattr(moved, split)
        assert isinstance(s, Split) and s.x.device.type == "cpu" and s.y.device.type == "cpu"
        assert torch.equal(s.x, getattr(ds, split).x)


# --- raw pixels, standardized when sliced --------------------------------------------------


def standardized_at_load(ds: Dataset, scale: float) -> list[torch.Tensor]:
    """What hpo did before images stayed 8-bit: every split converted to float32 once and
    standardized in place with the train statistics."""
    xs = [to_unit(s.x.numpy(), scale) for s in (ds.train, ds.val, ds.test)]
    mean, std = channel_stats(xs[0])
    return [standardize_(x, mean, std) for x in xs]


@pytest.mark.parametrize("source", ["digits", "idx"])
def test_sliced_inputs_equal_standardizing_at_load(tmp_path: Path, source: str) -> None:
    if source == "digits":
        ds, scale = load_dataset("digits", seed=1), 16.0
    else:
        ds, scale = load_dataset("mnist", data_dir=write_mnist(tmp_path), seed=1), 255.0
    expected = standardized_at_load(ds, scale)
    for split, old in zip((ds.train, ds.val, ds.test), expected, strict=True):
        assert split.x.dtype == torch.uint8
        assert torch.equal(split.inputs(), old)  # bit for bit, not just close
        index = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))[:7]
        inputs, labels = split.batch(index)
        assert torch.equal(inputs, old[index]) and torch.equal(labels, split.y[index])
        assert torch.equal(split.batch(slice(2, 5))[0], old[2:5])
    assert ds.train.norm is not None and ds.train.norm.scale == scale
    assert ds.train.norm is ds.val.norm is ds.test.norm  # one set of train statistics


def test_slicing_leaves_the_stored_pixels_alone() -> None:
    ds = load_dataset("digits")
    before = ds.train.x.clone()
    ds.train.inputs().add_(1.0)  # a caller that scribbles on its batch
    ds.train.batch(slice(0, 10))[0].zero_()
    assert torch.equal(ds.train.x, before)


def test_rings_stay_float_inputs() -> None:
    ds = load_dataset("rings")
    assert ds.train.norm is None and ds.train.x.dtype == torch.float32
    assert torch.equal(ds.train.inputs(), ds.train.x)


# --- max_val -------------------------------------------------------------------------------


def test_max_val_caps_val_only() -> None:
    full = load_dataset("digits", seed=4)
    capped = load_dataset("digits", seed=4, max_val=100)
    assert len(capped.val) == 100
    counts = torch.bincount(capped.val.y, minlength=10)
    assert int(counts.min()) >= 9 and int(counts.max()) <= 11  # stratified subset
    for split in ("train", "test"):  # same samples, so the same train statistics too
        assert torch.equal(getattr(full, split).x, getattr(capped, split).x)
        assert torch.equal(getattr(full, split).inputs(), getattr(capped, split).inputs())
    # A subset of the full val split, drawn the same way every time.
    full_rows = {tuple(r) for r in full.val.x.reshape(len(full.val), -1).tolist()}
    assert all(tuple(r) in full_rows for r in capped.val.x.reshape(100, -1).tolist())
    assert torch.equal(load_dataset("digits", seed=4, max_val=100).val.x, capped.val.x)
    assert not torch.equal(load_dataset("digits", seed=5, max_val=100).val.y, capped.val.y)
    assert len(load_dataset("digits", seed=4, max_val=10_000).val) == len(full.val)


def test_max_val_and_max_train_are_independent() -> None:
    both = load_dataset("rings", seed=2, max_train=300, max_val=50)
    train_only = load_dataset("rings", seed=2, max_train=300)
    assert (len(both.train), len(both.val)) == (300, 50)
    assert torch.equal(both.train.x, train_only.train.x)


@pytest.mark.parametrize("value", [0, -3, 2.5, True])
def test_bad_max_val(value: object) -> None:
    with pytest.raises(DataError, match="max_val must be a positive integer"):
        load_dataset("rings", max_val=value)


STUDY_HEAD = '[study]\nname = "s"\n[model]\nname = "cnn"\n[data]\nname = "fashion-mnist"\n'


def test_max_val_in_the_study_file() -> None:
    spec = parse_spec(tomllib.loads(STUDY_HEAD + "max_train = 500\nmax_val = 200\n"), source="f")
    assert (spec.data.max_train, spec.data.max_val) == (500, 200)
    assert parse_spec(tomllib.loads(STUDY_HEAD), source="f").data.max_val is None


@pytest.mark.parametrize("value", ["5", "2000.0", '"many"', "true"])
def test_bad_max_val_in_the_study_file(value: str) -> None:
    with pytest.raises(SpecError, match=r"f: data\.max_val: .* must be an integer >= 10"):
        parse_spec(tomllib.loads(STUDY_HEAD + f"max_val = {value}\n"), source="f")


# --- the real Fashion-MNIST (Debian's dataset-fashion-mnist) --------------------------------


@pytest.fixture(scope="module")
def fashion() -> Dataset:
    return load_dataset("fashion-mnist", data_dir=FASHION, seed=0)


def test_real_fashion_mnist_files() -> None:
    train_images = read_idx(FASHION / "train-images-idx3-ubyte.gz")
    test_labels = read_idx(FASHION / "t10k-labels-idx1-ubyte.gz")
    assert train_images.shape == (60000, 28, 28) and train_images.dtype == np.uint8
    assert test_labels.shape == (10000,)
    assert np.bincount(test_labels).tolist() == [1000] * 10  # labels 0..9, balanced


def test_real_fashion_mnist_split_and_memory(fashion: Dataset) -> None:
    assert_well_formed(fashion, (1, 28, 28), 10)
    assert (len(fashion.train), len(fashion.val), len(fashion.test)) == (48000, 12000, 10000)
    assert torch.bincount(fashion.val.y).tolist() == [1200] * 10
    # 70,000 images at one byte a pixel: ~55 MB wherever they live, not 4x that.
    pixels = sum(s.x.numel() * s.x.element_size() for s in (fashion.train, fashion.val))
    pixels += fashion.test.x.numel() * fashion.test.x.element_size()
    assert pixels == 70000 * 28 * 28
    mean, std = fashion.train.norm.mean.item(), fashion.train.norm.std.item()
    assert 0.25 < mean < 0.35 and 0.3 < std < 0.4  # the well-known 0.286 / 0.353


def test_real_fashion_mnist_found_without_a_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_PATH_ENV, raising=False)
    assert find_data_dir("fashion-mnist", None) == FASHION


REAL_STUDY = study_text(
    "fm",
    "depth = 1\nwidth = { low = 16, high = 32 }\nlr = { low = 1e-3, high = 1e-2, log = true }\n"
    "batch_size = 100",
    epochs=2,
    data='name = "fashion-mnist"\nmax_train = 1000\nmax_val = 500',
)


def test_short_real_study_runs_out_of_the_box(tmp_path: Path) -> None:
    import optuna

    study_file = tmp_path / "fm.toml"
    study_file.write_text(REAL_STUDY)
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    result = run_hpo("--storage", url, "launch", "study", str(study_file), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    trials = optuna.load_study(study_name="fm", storage=url).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    for trial in trials:
        assert trial.value > 0.5  # chance is 0.1; a small MLP gets ~0.75 here
        assert trial.user_attrs["train_device_seconds"] > 0
        assert "peak_gpu_mb" not in trial.user_attrs  # a CPU run


def test_train_and_validation_merge_keeps_the_train_statistics() -> None:
    data = load_dataset("digits", max_train=100)
    merged = data.with_validation_in_train()
    assert len(merged.train) == len(data.train) + len(data.val)
    assert merged.train.norm is data.train.norm
    assert merged.val is data.val and merged.test is data.test
