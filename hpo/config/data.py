"""The `[data]` keys of a user's own data set (`name = "folder" | "npz" | "csv"`).

`path` is relative to the study file; `load_spec` makes it absolute before the spec is
validated, so the snapshot stored with the study names the same files for every worker.
What the keys may hold is checked here; whether the files are there and readable is the
reader's business (hpo.training.userdata), at launch, before the study is created.
Pure: no torch, no numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hpo.config.vocabulary import USER_DATASETS
from hpo.errors import SpecError

USER_KEYS = frozenset({"path", "label", "image_size", "channels"})
# Which user keys each kind takes; the others are refused, not ignored.
KIND_KEYS: dict[str, frozenset[str]] = {
    "folder": frozenset({"path", "image_size", "channels"}),
    "npz": frozenset({"path"}),
    "csv": frozenset({"path", "label"}),
}
MAX_IMAGE_SIDE = 1024  # pixels of image_size: every decoded image is kept in memory
CHANNELS = (1, 3)  # grayscale, RGB
# What each kind holds, when the spec alone says: images go to cnn/resnet, features to mlp.
# An npz may hold either; its reader says which.
KIND_OF: dict[str, str] = {"folder": "images", "csv": "features"}
MODELS_FOR = {"images": ("cnn", "resnet"), "features": ("mlp",)}

Err = Callable[[str, str], SpecError]


def resolve_data_path(raw: Mapping[str, Any], base: Path) -> Mapping[str, Any]:
    """`raw` (a parsed study file) with `[data] path` made absolute against `base` (the study
    file's folder); anything malformed is left for the validation to name."""
    data = raw.get("data")
    if not isinstance(data, Mapping) or not isinstance(data.get("path"), str):
        return raw
    path = Path(data["path"]).expanduser()
    if not path.is_absolute():
        path = base.resolve() / path
    return {**raw, "data": {**data, "path": str(path)}}


def check_user_data(
    name: str, keys: Mapping[str, Any], dir_: Any, err: Err
) -> tuple[tuple[int, int] | None, int | None]:
    """Validate the user keys of `[data]`; returns image_size as a tuple and channels."""
    given = {key for key, value in keys.items() if value is not None}
    if name not in USER_DATASETS:
        if given:
            key = min(given)
            raise err(f"data.{key}", f"applies to data {', '.join(USER_DATASETS)}, not {name!r}")
        return None, None
    extra = given - KIND_KEYS[name]
    if extra:
        allowed = ", ".join(sorted(KIND_KEYS[name]))
        raise err(f"data.{min(extra)}", f"does not apply to data {name!r}; it takes {allowed}")
    if dir_ is not None:
        raise err("data.dir", f"data {name!r} is read from data.path, not data.dir")
    path = keys.get("path")
    if not isinstance(path, str) or not path.strip():
        raise err("data.path", f"is required for data {name!r}: a path relative to the study file")
    if name == "csv":
        label = keys.get("label")
        if not isinstance(label, str) or not label:
            raise err("data.label", "is required for csv: the name of the label column")
    size = keys.get("image_size")
    if size is not None:
        if not (
            isinstance(size, list | tuple) and len(size) == 2 and all(_side(side) for side in size)
        ):
            raise err(
                "data.image_size",
                f"{size!r} must be [height, width], integers in [1, {MAX_IMAGE_SIDE}]",
            )
        size = (int(size[0]), int(size[1]))
    channels = keys.get("channels")
    if channels is not None and not (type(channels) is int and channels in CHANNELS):
        raise err("data.channels", f"{channels!r} must be 1 (grayscale) or 3 (RGB)")
    return size, channels


def _side(value: Any) -> bool:
    return type(value) is int and 1 <= value <= MAX_IMAGE_SIDE


def pairing_problem(model: str, data: str, kind: str | None) -> str | None:
    """Why `model` cannot train on user data `data` holding `kind` ("images"/"features"),
    or None. Models outside the built-in three (own networks) take either."""
    if kind is None or model not in ("cnn", "resnet", "mlp"):
        return None
    fits = MODELS_FOR[kind]
    if model in fits:
        return None
    return f"{model} cannot train on {data} data holding {kind}; use {' or '.join(fits)}"
