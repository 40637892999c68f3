"""Own networks: a study's `[model] entry = "module:function"`, found, checked and built.

`build(input_shape, num_classes, **params) -> nn.Module` takes every [space] key that is
not a training key (hpo.config.space.TRAINING_KEYS). The module is looked up in the study
file's folder first, then on sys.path (PYTHONPATH). What a worker runs must be what the
study was launched with: the module's source is hashed at launch, stored with the spec,
and a worker whose copy differs refuses to join.

Every error is a ModelEntryError of one line naming the entry and the reason: at launch,
before any trial exists (exit 2); at trial time it fails that trial only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.machinery
import inspect
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hpo.config.space import (
    TRAINING_KEYS,
    CategoricalParam,
    FixedParam,
    FloatParam,
    IntParam,
    Param,
)
from hpo.config.spec import StudySpec
from hpo.errors import ModelEntryError
from hpo.training.loop import num_outputs
from models import create_model

Builder = Callable[..., Any]
# module name -> the source hash it was imported with, so that an edited file is imported again
_IMPORTED: dict[str, str] = {}
CHECK_BATCH = 2  # samples of the forward pass that checks a build at launch (BatchNorm needs 2)


def source_path(entry: str, folder: str | None) -> Path:
    """The source file of `entry`'s module, found without running it: `folder` first, then
    sys.path; ModelEntryError when there is none."""
    parts = entry.split(":")[0].split(".")
    search = ([folder] if folder else []) + [p or "." for p in sys.path]
    found = None
    for depth, part in enumerate(parts):
        found = importlib.machinery.PathFinder.find_spec(part, search)
        if found is None:
            where = f"in {folder} or on PYTHONPATH" if folder else "on PYTHONPATH"
            name = ".".join(parts[: depth + 1])
            raise _error(entry, f"no module {name!r} {where}")
        search = list(found.submodule_search_locations or [])
    assert found is not None
    if not found.origin or not Path(found.origin).is_file():
        raise _error(entry, f"module {found.name!r} has no source file")
    return Path(found.origin)


def source_sha256(entry: str, folder: str | None) -> str:
    """The SHA-256 of `entry`'s module source, as hex."""
    path = source_path(entry, folder)
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise _error(entry, f"cannot read {path}: {exc.strerror or exc}") from None


def load_builder(entry: str, folder: str | None) -> Builder:
    """The function `entry` names, its module imported from the file `source_path` finds."""
    module_name, function = entry.split(":")
    path = source_path(entry, folder)
    if folder and folder in sys.path:
        sys.path.remove(folder)
    if folder:  # where a later import of the user's own helpers looks too
        sys.path.insert(0, folder)
    taken = _taken_by(module_name, path)
    if taken is not None:  # replacing hpo's `models` (or torch) would break this process
        raise _error(
            entry,
            f"the name {module_name.split('.')[0]!r} is taken by a module hpo has imported "
            f"({taken}); rename {path.name}",
        )
    digest = source_sha256(entry, folder)
    loaded = sys.modules.get(module_name)
    if loaded is not None and (
        not _same_file(getattr(loaded, "__file__", None), path)
        or _IMPORTED.get(module_name, digest) != digest
    ):
        # Another file of that name (another study's folder), or the file changed: import
        # this one, as it is now.
        top = module_name.split(".")[0]
        for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
            del sys.modules[name]
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's code: any error is the entry's
        raise _error(entry, f"importing {path} raised {_reason(exc)}") from None
    if not _same_file(getattr(module, "__file__", None), path):
        raise _error(entry, f"importing {module_name!r} found {module.__file__}, not {path}")
    _IMPORTED[module_name] = digest
    builder = getattr(module, function, None)
    if builder is None:
        raise _error(entry, f"module {module_name!r} ({path}) has no function {function!r}")
    if not callable(builder):
        raise _error(entry, f"{function!r} in {path} is not a function")
    return builder


def _taken_by(module_name: str, path: Path) -> str | None:
    """The file of an imported module (not the user's) whose name `module_name`'s top level
    would take over, or None: the user's own file, or a name nobody has imported."""
    top = module_name.split(".")[0]
    loaded = sys.modules.get(top)
    if loaded is None or any(n == top or n.startswith(top + ".") for n in _IMPORTED):
        return None
    root = path.resolve().parents[module_name.count(".")]  # the folder the name is found in
    file = getattr(loaded, "__file__", None)
    if file is not None and Path(file).resolve().is_relative_to(root):
        return None  # the user's module, imported before hpo looked
    return str(file or "a module without a file")


def with_source(spec: StudySpec) -> StudySpec:
    """`spec` with its entry's source hash, as launched from here."""
    assert spec.entry is not None
    return dataclasses.replace(spec, entry_sha256=source_sha256(spec.entry, spec.entry_dir))


def check_same_source(spec: StudySpec) -> None:
    """Refuse to run a study's own network from a module that differs from the launched one."""
    if spec.entry is None or spec.entry_sha256 is None:
        return
    here = source_sha256(spec.entry, spec.entry_dir)
    if here != spec.entry_sha256:
        path = source_path(spec.entry, spec.entry_dir)
        raise _error(
            spec.entry,
            f"the module here ({path}, sha256 {here[:12]}) differs from the one study "
            f"{spec.name!r} was launched with (sha256 {spec.entry_sha256[:12]}); every worker "
            "must run the same code: copy that file here, or launch a new study",
        )


def check_signature(entry: str, builder: Builder, space: Mapping[str, Param]) -> None:
    """Refuse [space] keys that `builder` does not take, and keywords it needs but the space
    does not give."""
    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):  # a builtin without a signature: judged when called
        return
    parameters = list(signature.parameters.values())
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2 and not any(p.kind is p.VAR_POSITIONAL for p in parameters):
        raise _error(entry, "build must take (input_shape, num_classes, **params)")
    keywords = {
        p.name: p for p in parameters[2:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    given = [key for key in space if key not in TRAINING_KEYS]
    accepts = ", ".join(keywords) or "no hyperparameter"
    if not any(p.kind is p.VAR_KEYWORD for p in parameters):
        unknown = [key for key in given if key not in keywords]
        if unknown:
            raise _error(
                entry,
                f"build takes no keyword {', '.join(map(repr, unknown))} (from [space]); it "
                f"accepts: {accepts}",
            )
    needed = [n for n, p in keywords.items() if p.default is p.empty and n not in space]
    if needed:
        raise _error(
            entry, f"build needs {', '.join(map(repr, needed))}, which [space] does not set"
        )


def first_params(space: Mapping[str, Param]) -> dict[str, Any]:
    """A point of the space to build at launch: fixed values, first choices, range lows."""
    params: dict[str, Any] = {}
    for key, param in space.items():
        if isinstance(param, FixedParam):
            params[key] = param.value
        elif isinstance(param, CategoricalParam):
            params[key] = param.choices[0]
        else:
            assert isinstance(param, IntParam | FloatParam)
            params[key] = param.low
    return params


def build_own(
    entry: str,
    builder: Builder,
    in_shape: tuple[int, ...],
    num_classes: int,
    model_params: Mapping[str, Any],
) -> nn.Module:
    """`builder(in_shape, num_classes, **model_params)`, which must be an nn.Module."""
    try:
        net = builder(tuple(in_shape), num_classes, **model_params)
    except Exception as exc:  # the user's code: any error is the entry's
        raise _error(
            entry, f"build{_call_text(in_shape, num_classes, model_params)} raised {_reason(exc)}"
        ) from None
    if not isinstance(net, nn.Module):
        raise _error(entry, f"build returned {type(net).__name__}, not a torch.nn.Module")
    return net


def check_build(spec: StudySpec, in_shape: tuple[int, ...], num_classes: int) -> None:
    """Import, signature, one build at the space's first point and one forward pass: what
    `hpo launch` checks before it creates a trial."""
    assert spec.entry is not None
    builder = load_builder(spec.entry, spec.entry_dir)
    check_signature(spec.entry, builder, spec.space)
    params = {k: v for k, v in first_params(spec.space).items() if k not in TRAINING_KEYS}
    net = build_own(spec.entry, builder, in_shape, num_classes, params)
    try:
        with torch.no_grad():
            out = net.eval()(torch.zeros(CHECK_BATCH, *in_shape))
    except Exception as exc:
        raise _error(
            spec.entry,
            f"the built module's forward on a batch of {_shape(CHECK_BATCH, *in_shape)}"
            f" raised {_reason(exc)}",
        ) from None
    widths = {num_classes, num_outputs(num_classes)}
    if not (isinstance(out, torch.Tensor) and out.ndim == 2 and out.shape[1] in widths):
        got = _shape(*out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        want = " or ".join(_shape(CHECK_BATCH, w) for w in sorted(widths))
        raise _error(
            spec.entry,
            f"the built module answers a batch of {_shape(CHECK_BATCH, *in_shape)} with {got};"
            f" expected {want} (one score per class)",
        )


def create_network(
    spec: StudySpec,
    in_shape: tuple[int, ...],
    num_classes: int,
    model_params: Mapping[str, Any],
) -> nn.Module:
    """A trial's network: a built-in model by name, or the study's own build."""
    if spec.entry is None:
        return create_model(
            spec.model, in_shape=in_shape, num_outputs=num_outputs(num_classes), **model_params
        )
    check_same_source(spec)  # a file edited since launch fails the trial, never runs
    builder = load_builder(spec.entry, spec.entry_dir)
    return build_own(spec.entry, builder, in_shape, num_classes, model_params)


def entry_record(spec: StudySpec) -> dict[str, Any] | None:
    """What rebuilding an own network takes, for a model file's record; None: built-in."""
    if spec.entry is None:
        return None
    return {"entry": spec.entry, "dir": spec.entry_dir, "sha256": spec.entry_sha256}


def rebuild_own(
    record: Mapping[str, Any], in_shape: tuple[int, ...], num_classes: int
) -> nn.Module:
    """The own network a model file's record names, with fresh weights."""
    own = record["entry"]
    builder = load_builder(own["entry"], own.get("dir"))
    return build_own(own["entry"], builder, in_shape, num_classes, record["model_params"])


def _same_file(name: str | None, path: Path) -> bool:
    return name is not None and Path(name).resolve() == path.resolve()


def _error(entry: str, reason: str) -> ModelEntryError:
    return ModelEntryError(f"[model] entry {entry!r}: {reason}")


def _reason(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _shape(*dims: int) -> str:
    return "(" + ", ".join(str(int(d)) for d in dims) + ")"


def _call_text(in_shape: tuple[int, ...], num_classes: int, params: Mapping[str, Any]) -> str:
    keywords = "".join(f", {k}={v!r}" for k, v in params.items())
    return f"({tuple(in_shape)!r}, {num_classes}{keywords})"
