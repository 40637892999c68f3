"""Where workers run: GPU selection, GPU memory shares and CPU thread shares.

The launcher decides (pure functions) and tells each worker process through its
environment; the worker applies the limits once, before it loads any data.
"""

from __future__ import annotations

import logging
import os

from hpo.errors import HpoError

THREADS_ENV = "HPO_THREADS"  # torch threads of a CPU worker
GPU_MEMORY_FRACTION_ENV = "HPO_GPU_MEMORY_FRACTION"  # share of its GPU a worker may allocate
LAUNCHER_PID_ENV = "HPO_LAUNCHER_PID"  # a spawned worker stops when this process is gone

log = logging.getLogger("hpo.runtime.devices")


def visible_gpus() -> int:
    import torch

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


def usable_cores() -> int:
    """The CPUs this process may run on: under taskset, a cpuset or a Slurm allocation
    fewer than the machine has (os.cpu_count counts them all)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity on this platform (macOS)
        return os.cpu_count() or 1


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Torch threads per CPU worker so that N workers share the cores without oversubscribing."""
    cores = cores or usable_cores()
    return max(1, cores // max(1, workers))


def apply_worker_limits(device: str) -> None:
    """Apply the limits the launcher set in this worker's environment.

    CPU: the torch thread count, else one thread per CPU this process may use (a Slurm
    task's allocation, a cpuset). CUDA: the memory share, so that one large trial fails
    alone with an out-of-memory reason instead of starving the workers beside it.
    """
    import torch

    threads = os.environ.get(THREADS_ENV)
    torch.set_num_threads(int(threads) if threads and threads.isdigit() else usable_cores())
    fraction = os.environ.get(GPU_MEMORY_FRACTION_ENV)
    if fraction and device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(float(fraction), torch.device(device))
        log.info("GPU memory share of this worker: %s", fraction)
