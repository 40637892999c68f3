"""What every command shares: storage, heartbeat, artifact folder, checkpoint interval.

Free of torch, Optuna and SQLAlchemy so that `hpo --help` and `hpo --version` start at
once; the heavy modules are imported only by the calls that need them.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_STORAGE = "sqlite:///hpo.db"  # the embedded default, in the working directory
ARTIFACTS_FOLDER = "hpo-artifacts"  # default artifact folder name, beside a SQLite file
HEARTBEAT_INTERVAL = 10  # seconds between a running trial's heartbeats
CHECKPOINT_EVERY = 30.0  # seconds of training between checkpoint writes of a trial
# How the launcher tells a worker how many workers share its device; the memory guard
# divides the device's memory by it.
WORKERS_ON_DEVICE_ENV = "HPO_WORKERS_ON_DEVICE"
# Kept free of every worker's share: the CUDA context and cuDNN workspaces of K processes
# live outside the caching allocator that the fraction caps.
GPU_MEMORY_RESERVE = 0.05


def gpu_memory_fraction(workers_on_gpu: int) -> float:
    """The share of a GPU's memory each of `workers_on_gpu` workers may allocate."""
    return (1.0 - GPU_MEMORY_RESERVE) / max(1, workers_on_gpu)


@dataclass(frozen=True)
class Settings:
    """The root options, as every command receives them."""

    storage_url: str  # Optuna storage URL; may hold a password: print storage.urls.mask_url(it)
    heartbeat_interval: int  # seconds between heartbeats of a running trial
    artifacts: str  # epoch checkpoints and report files; optuna-dashboard serves it
    checkpoint_every: float  # seconds of training between a trial's checkpoint writes

    def worker_env(self) -> dict[str, str]:
        """What spawned workers inherit besides the storage URL (passed separately)."""
        return {
            "HPO_HEARTBEAT": str(self.heartbeat_interval),
            "HPO_ARTIFACTS": self.artifacts,
            "HPO_CHECKPOINT_EVERY": str(self.checkpoint_every),
        }
