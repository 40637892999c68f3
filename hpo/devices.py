"""Where workers run: GPU selection and CPU thread shares (pure functions)."""

from __future__ import annotations

import os

import torch

from hpo.errors import HpoError


def visible_gpus() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def parse_gpus(text: str, available: int) -> list[int]:
    """`all`, `none` or a comma list of indices -> the GPU indices to use."""
    text = text.strip().lower()
    if text == "all":
        return list(range(available))
    if text in ("none", ""):
        return []
    try:
        indices = [int(part) for part in text.split(",")]
    except ValueError:
        raise HpoError(f"--gpus {text!r}: use all, none, or indices like 0,1") from None
    bad = [i for i in indices if not 0 <= i < available]
    if bad:
        seen = f"0-{available - 1}" if available else "none"
        raise HpoError(f"--gpus {text}: GPU {bad[0]} is not visible here (visible: {seen})")
    if len(set(indices)) != len(indices):
        raise HpoError(f"--gpus {text}: an index is repeated")
    return indices


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Torch threads per CPU worker so that N workers share the cores without oversubscribing."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(1, workers))
