"""What every command shares: storage, heartbeat, artifact folder, checkpoint interval.

Free of torch, Optuna and SQLAlchemy so that `hpo --help` and `hpo --version` start at
once; the heavy modules are imported only by the calls that need them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: importing the storage would load Optuna at start-up
    from hpo.storage.proxy import ProxyStorage
    from hpo.storage.rdb import ResilientRDBStorage

DEFAULT_STORAGE = "sqlite:///hpo.db"  # the embedded default, in the working directory
ARTIFACTS_FOLDER = "hpo-artifacts"  # default artifact folder name, beside a SQLite file
HEARTBEAT_INTERVAL = 10  # seconds between a running trial's heartbeats
CHECKPOINT_EVERY = 30.0  # seconds of training between checkpoint writes of a trial


@dataclass(frozen=True)
class Settings:
    """The root options, as every command receives them."""

    storage_url: str  # Optuna storage URL; may hold a password: show `shown` instead
    heartbeat_interval: int  # seconds between heartbeats of a running trial
    artifacts: str  # epoch checkpoints and report files; optuna-dashboard serves it
    checkpoint_every: float  # seconds of training between a trial's checkpoint writes

    def open(self) -> ResilientRDBStorage | ProxyStorage:
        """Connect to the storage, or to a storage proxy (one line and exit 2 if that fails)."""
        import optuna

        from hpo.storage.rdb import open_storage

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # hpo reports for itself
        return open_storage(self.storage_url, heartbeat_interval=self.heartbeat_interval)

    @property
    def shown(self) -> str:
        """The storage URL with its password masked, for output."""
        from hpo.storage.urls import mask_url

        return mask_url(self.storage_url)

    def worker_env(self) -> dict[str, str]:
        """What spawned workers inherit besides the storage URL (passed separately)."""
        return {
            "HPO_HEARTBEAT": str(self.heartbeat_interval),
            "HPO_ARTIFACTS": self.artifacts,
            "HPO_CHECKPOINT_EVERY": str(self.checkpoint_every),
        }
