"""A trained model as one file of plain tensors, rebuilt as a network that takes raw inputs.

The file (model.pt) is a dict of a format number, a JSON record and a state dict, written by
torch.save and read back with ``weights_only=True``: tensors and plain values only, never a
pickle of code. The record says how to rebuild the network (model name, its create_model
keys, input shape, outputs) and what it expects and answers: raw samples in the data set's
own units (pixels 0-255, digits' values 0-16, raw features), shaped (N, C, H, W) or (N, F),
and one score per class, whose names the record lists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from hpo.errors import HpoError
from hpo.training.data import CLASS_NAMES, Dataset, Normalization
from hpo.training.loop import num_outputs
from hpo.training.modelentry import rebuild_own
from models import create_model

FORMAT = 1  # layout of the file and its record; other layouts are refused
MODEL_FILE = "model.pt"


class RawInputModel(nn.Module):
    """A trained network behind the standardization it was trained with.

    Takes raw samples (uint8 or float) and returns one score per class, so that
    ``model(raw).argmax(1)`` is the predicted class. A two-class network has one logit
    (class 1 when it is > 0, as training counted it); here it answers ``[0, logit]``.
    """

    def __init__(self, net: nn.Module, norm: Normalization, *, binary: bool) -> None:
        super().__init__()
        self.net = net
        self.scale = float(norm.scale)
        self.binary = binary
        self.register_buffer("mean", norm.mean.detach().to("cpu", torch.float32).clone())
        self.register_buffer("std", norm.std.detach().to("cpu", torch.float32).clone())

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        # The float32 ops of training's Normalization, in its order: the same inputs exactly.
        x = (raw.to(torch.float32) / self.scale - self.mean) / self.std
        logits = self.net(x)
        if self.binary and logits.shape[1] == 1:  # an own network may answer 2 scores
            return torch.cat([torch.zeros_like(logits), logits], dim=1)
        return logits


def wrap(net: nn.Module, data: Dataset) -> RawInputModel:
    """The trained `net` (not copied) taking the raw samples of `data`."""
    return RawInputModel(net, data.raw_inputs, binary=num_outputs(data.num_classes) == 1)


def model_record(
    *,
    model: str,
    params: Mapping[str, Any],
    model_params: Mapping[str, Any],
    data: Dataset,
    seed: int,
    entry: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What rebuilding a trial's network takes, and what its users need to know; `entry`:
    an own network's (hpo.training.modelentry.entry_record)."""
    norm = data.raw_inputs
    images = len(data.in_shape) == 3
    return {
        "format": FORMAT,
        "model": model,
        **({"entry": dict(entry)} if entry is not None else {}),
        "model_params": dict(model_params),
        "params": dict(params),
        "seed": seed,
        "dataset": data.name,
        "in_shape": list(data.in_shape),
        "num_classes": data.num_classes,
        "class_names": list(
            data.class_names or CLASS_NAMES.get(data.name, map(str, range(data.num_classes)))
        ),
        "input": {
            "layout": "(N, C, H, W)" if images else "(N, F)",
            "units": f"raw values, 0 to {norm.scale:g}" if images else "raw feature values",
            # model input = (raw / scale - mean) / std, per channel (images) or feature
            "scale": norm.scale,
            "mean": norm.mean.flatten().tolist(),
            "std": norm.std.flatten().tolist(),
        },
    }


def save_model(path: str | Path, model: RawInputModel, record: Mapping[str, Any]) -> None:
    """Write `model`'s tensors (on the CPU, contiguous) and `record` to one file."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with open(path, "wb") as file:
        save_tensors({"format": FORMAT, "record": json.dumps(record), "state_dict": state}, file)


def save_tensors(obj: object, file: BinaryIO) -> None:
    """torch.save into an open file. A write that fails (a full disk) raises its OSError,
    which torch's writer wraps in a RuntimeError that names only its own source line."""
    try:
        torch.save(obj, file)
    except RuntimeError as exc:
        if isinstance(exc.__context__, OSError):
            raise exc.__context__ from None
        raise


def read_model(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(record, state dict) of a model file; HpoError if it is not one hpo can rebuild."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        record = json.loads(saved["record"])
        state = saved["state_dict"]
        fmt = saved["format"]
    except FileNotFoundError:
        raise HpoError(f"{path}: no such model file (write one with `hpo export`)") from None
    except Exception as exc:  # anything unreadable: not ours, or damaged
        raise HpoError(f"{path}: not an hpo model file ({type(exc).__name__})") from None
    if fmt != FORMAT:
        raise HpoError(f"{path}: model file format {fmt!r}; this hpo reads format {FORMAT}")
    return record, state


def rebuild(record: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> RawInputModel:
    """The network of `record` with the weights of `state`, in eval mode."""
    in_shape = tuple(record["in_shape"])
    outputs = num_outputs(int(record["num_classes"]))
    if "entry" in record:  # an own network: its module must be importable here
        net = rebuild_own(record, in_shape, int(record["num_classes"]))
    else:
        net = create_model(
            record["model"], in_shape=in_shape, num_outputs=outputs, **record["model_params"]
        )
    stat_shape = (1, in_shape[0], 1, 1) if len(in_shape) == 3 else (1, *in_shape)
    inputs = record["input"]
    norm = Normalization(
        float(inputs["scale"]),
        torch.tensor(inputs["mean"], dtype=torch.float32).reshape(stat_shape),
        torch.tensor(inputs["std"], dtype=torch.float32).reshape(stat_shape),
    )
    model = RawInputModel(net, norm, binary=outputs == 1)
    try:  # strict: the buffers' exact float32 values come from here
        model.load_state_dict(state)
    except RuntimeError as exc:  # an own network whose code changed since it was trained
        if "entry" not in record:
            raise
        first = str(exc).strip().splitlines()[0]
        raise HpoError(
            f"[model] entry {record['entry']['entry']!r}: the network it builds here does not "
            f"take the saved weights ({first}); use the module the model was trained with"
        ) from None
    return model.eval()
