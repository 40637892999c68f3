"""A user's own data set (`[data] name = "npz" | "csv" | "folder"`) read into arrays.

Whatever the kind, the result is what the built-in sets are made of: uint8 images
(N, C, H, W) or float32 features (N, F), int64 labels indexing the sorted class names, and
an optional test part. hpo.training.data then splits, standardizes and caps them as it does
the built-in sets. Data files are untrusted: an npz is read with ``allow_pickle=False``,
every problem is one DataError line naming the file and what is wrong.

The data's identity (kind, path, examples per split, a hash of the arrays) is stored with the
study, so a worker that finds other data under the same path refuses to join
(``check_identity``).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hpo.config.data import pairing_problem
from hpo.config.space import CategoricalParam, FixedParam
from hpo.config.spec import StudySpec
from hpo.config.vocabulary import USER_DATASETS
from hpo.errors import DataError
from hpo.training.userarrays import UserArrays, encode_labels, printable

DATA_ATTR = "data"  # study user attr: the identity of a user's data set (see `identity`)
MAX_CSV_BYTES = 2 * 2**30  # a table beyond this is not read into memory


@dataclass(frozen=True)
class UserSource:
    """Where a user's data set is and how to read it: the `[data]` keys of its spec."""

    kind: str  # folder | npz | csv
    path: str  # absolute
    label: str | None = None  # csv: the label column
    image_size: tuple[int, int] | None = None  # folder: (height, width) to resize to
    channels: int | None = None  # folder: 1 or 3; None: as the images are
    cache_dir: str | None = None  # folder: where decoded images are cached; None: no cache


def read_for_spec(
    spec: StudySpec, cache_dir: str | Path | None = None
) -> tuple[UserSource | None, UserArrays | None]:
    """The source and arrays of a study's own data; (None, None) for a built-in set."""
    data = spec.data
    if data.name not in USER_DATASETS or data.path is None:
        return None, None
    cache = None if cache_dir is None else str(cache_dir)
    source = UserSource(data.name, data.path, data.label, data.image_size, data.channels, cache)
    arrays = read_user_data(source, model=spec.model)
    augment = spec.space.get("augment")
    values = (
        (augment.value,)
        if isinstance(augment, FixedParam)
        else augment.choices
        if isinstance(augment, CategoricalParam)
        else ()
    )
    if arrays.kind == "features" and "crop_flip" in values:
        raise DataError(f"{source.path}: crop_flip (space.augment) needs images, not features")
    return source, arrays


def read_user_data(source: UserSource, *, model: str | None = None) -> UserArrays:
    """The arrays of `source`, checked; `model` (the study's) is checked against the kind."""
    try:
        return _read(source, model)
    except DataError as err:  # file names are the user's: shown escaped, on one line
        raise DataError(printable(str(err))) from None


def _read(source: UserSource, model: str | None) -> UserArrays:
    path = Path(source.path)
    if not path.exists():
        raise DataError(f"{path}: no such {'folder' if source.kind == 'folder' else 'file'}")
    if source.kind == "folder":
        from hpo.training.imagefolder import read_folder

        arrays = read_folder(path, source.image_size, source.channels, source.cache_dir)
    elif source.kind == "npz":
        arrays = read_npz(path)
    elif source.kind == "csv":
        arrays = read_csv(path, source.label or "")
    else:
        raise DataError(f"unknown user data kind {source.kind!r}")
    arrays = dataclasses.replace(arrays, origin=str(path))
    if len(arrays.class_names) < 2:
        found = ", ".join(arrays.class_names) or "none"
        raise DataError(f"{path}: {len(arrays.class_names)} class ({found}); at least 2 needed")
    problem = pairing_problem(model or "", source.kind, arrays.kind)
    if problem:
        raise DataError(f"{path}: {problem}")
    return arrays


def identity(source: UserSource, arrays: UserArrays, examples: dict[str, int]) -> dict[str, Any]:
    """What the study stores of its data: kind, path, examples per split, hash, classes."""
    return {
        "kind": source.kind,
        "path": source.path,
        "examples": dict(examples),
        "hash": arrays.content_hash(),
        "class_names": list(arrays.class_names),
    }


def check_identity(stored: Any, found: dict[str, Any], where: str) -> None:
    """DataError in one line when the data found here differ from the study's."""
    if not isinstance(stored, dict):
        return
    keys = ("kind", "path", "examples", "hash")
    differing = [key for key in keys if stored.get(key) != found[key]]
    if differing:
        raise DataError(
            printable(
                f"{where}: the data at {found['path']} differ from the study's "
                f"({', '.join(differing)} differ: stored {_short(stored)}, found {_short(found)}); "
                "this worker refuses to join. Give every worker the same files, or launch a new "
                "study (--name NEW_NAME)"
            )
        )


def _short(entry: dict[str, Any]) -> str:
    examples = entry.get("examples")
    counts = "/".join(str(n) for n in examples.values()) if isinstance(examples, dict) else "?"
    return f"{entry.get('kind')} {counts} examples, hash {str(entry.get('hash'))[:12]}"


# --- npz -----------------------------------------------------------------------------------------


def read_npz(path: Path) -> UserArrays:
    """x_train, y_train and optional x_test, y_test from a NumPy archive; never unpickled."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            members = set(archive.files)
            missing = [key for key in ("x_train", "y_train") if key not in members]
            if missing:
                found = ", ".join(sorted(members)) or "nothing"
                raise DataError(
                    f"{path}: no {' or '.join(missing)} in the archive (it holds {found}); "
                    "an npz needs x_train, y_train and optionally x_test, y_test"
                )
            if ("x_test" in members) != ("y_test" in members):
                raise DataError(f"{path}: x_test and y_test come together; one is missing")
            arrays = {key: _member(archive, key, path) for key in members if "_t" in key}
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{path}: not a readable .npz archive ({err})") from None
    x, y = _npz_x(arrays["x_train"], path, "x_train"), arrays["y_train"]
    x_test, y_test = arrays.get("x_test"), arrays.get("y_test")
    _same_length(path, x, y, "x_train", "y_train")
    if x_test is not None and y_test is not None:
        x_test = _npz_x(x_test, path, "x_test")
        _same_length(path, x_test, y_test, "x_test", "y_test")
        if x_test.shape[1:] != x.shape[1:] or x_test.dtype != x.dtype:
            raise DataError(
                f"{path}: x_test is {x_test.dtype} {x_test.shape[1:]} per example but x_train "
                f"{x.dtype} {x.shape[1:]}"
            )
    for key, labels in (("y_train", y), ("y_test", y_test)):
        if labels is not None and labels.ndim != 1:
            raise DataError(f"{path}: {key} must be 1-D (one label per example): {labels.shape}")
    names, (y_enc, y_test_enc) = encode_labels(path, y, y_test)
    assert y_enc is not None
    return UserArrays(x, y_enc, x_test, y_test_enc, names)


def _member(archive: Any, key: str, path: Path) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as err:  # "Object arrays cannot be loaded when allow_pickle=False"
        raise DataError(
            f"{path}: {key} is an object array ({err}); hpo reads only plain numeric arrays "
            "and never unpickles a data file"
        ) from None


def _npz_x(x: np.ndarray, path: Path, key: str) -> np.ndarray:
    """Images as uint8 (N, C, H, W) or features as float32 (N, F)."""
    if x.dtype == np.uint8 and x.ndim in (3, 4):
        if x.ndim == 3:
            return x[:, None]
        if x.shape[-1] not in (1, 3):
            raise DataError(f"{path}: {key} images (N, H, W, C) need C = 1 or 3, got {x.shape}")
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if x.ndim == 2 and x.dtype.kind in "iuf":
        features = x.astype(np.float32)
        _check_finite(path, features, key)
        return features
    raise DataError(
        f"{path}: {key} is {x.dtype} {x.shape}; expected uint8 images (N, H, W) or "
        "(N, H, W, C), or numeric features (N, F)"
    )


def _same_length(path: Path, x: np.ndarray, y: np.ndarray, xs: str, ys: str) -> None:
    if len(x) != len(y):
        raise DataError(f"{path}: {xs} has {len(x)} examples but {ys} has {len(y)} labels")
    if len(x) == 0:
        raise DataError(f"{path}: {xs} holds no examples")


def _check_finite(path: Path, x: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"{path}: {what} holds NaN or inf (first at example {row}, feature {column}: "
            f"{x[row, column]})"
        )


# --- csv -----------------------------------------------------------------------------------------


def read_csv(path: Path, label: str) -> UserArrays:
    """One row per example: the `label` column, and every other column a numeric feature."""
    if path.is_dir():
        raise DataError(f"{path}: is a folder; data csv reads one table file")
    if path.stat().st_size > MAX_CSV_BYTES:
        raise DataError(f"{path}: {path.stat().st_size} bytes; a csv of at most 2 GiB is read")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: cannot read it as a UTF-8 csv table ({err})") from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise DataError(f"{path}: empty table (no header row)")
    header = [cell.strip() for cell in rows[0]]
    if label not in header:
        raise DataError(f"{path}: no label column {label!r}; the columns are {', '.join(header)}")
    if len(header) < 2:
        raise DataError(f"{path}: only the label column {label!r}; no feature columns")
    at = header.index(label)
    body = rows[1:]
    if not body:
        raise DataError(f"{path}: the table has a header but no rows")
    features = np.empty((len(body), len(header) - 1), dtype=np.float64)
    labels: list[str] = []
    columns = [name for i, name in enumerate(header) if i != at]
    for number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(
                f"{path}: row {number} has {len(row)} cells but the header {len(header)}"
            )
        if not row[at].strip():
            raise DataError(f"{path}: row {number}: the label column {label!r} is empty")
        labels.append(row[at].strip())
        for j, cell in enumerate(cell for i, cell in enumerate(row) if i != at):
            try:
                value = float(cell)
            except ValueError:
                raise DataError(
                    f"{path}: row {number}, column {columns[j]!r}: {cell.strip()!r} is not a "
                    f"number (every column but {label!r} must be numeric)"
                ) from None
            if not math.isfinite(value):
                raise DataError(
                    f"{path}: row {number}, column {columns[j]!r}: {cell.strip()!r} is NaN or "
                    "inf; features must be finite"
                )
            features[number - 2, j] = value
    names, (y,) = encode_labels(path, np.asarray(labels, dtype=str))
    assert y is not None
    return UserArrays(features.astype(np.float32), y, None, None, names)
