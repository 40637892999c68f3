"""optuna-dashboard on the storage, with the artifact folder (`hpo dashboard`).

What a comparison puts there (notes, plots, report files) is hpo.compare.publish.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import optuna_dashboard
from optuna.artifacts import FileSystemArtifactStore


def serve(
    storage: optuna.storages.BaseStorage, *, host: str, port: int, artifact_dir: str | Path
) -> None:
    """Run optuna-dashboard in this process until interrupted.

    In-process rather than the `optuna-dashboard` command: the storage URL (with any
    password) never appears on a command line, and our storage settings apply.
    """
    Path(artifact_dir).mkdir(parents=True, exist_ok=True)
    optuna_dashboard.run_server(
        storage, host=host, port=port, artifact_store=FileSystemArtifactStore(str(artifact_dir))
    )
