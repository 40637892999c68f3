"""hpo.report.dashboard.serve: optuna-dashboard on our storage with the artifact folder.

The real server is started (as `hpo dashboard`) by tests/hpo/compare/test_publish.py;
here, what `serve` hands optuna-dashboard, without a server.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import optuna
import optuna_dashboard
import pytest
from optuna.artifacts import FileSystemArtifactStore

from hpo.report.dashboard import serve


def test_serve_passes_storage_address_and_a_created_artifact_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(
        optuna_dashboard, "run_server", lambda storage, **kw: calls.append((storage, kw))
    )
    storage = optuna.storages.InMemoryStorage()
    folder = tmp_path / "not" / "there" / "yet"
    serve(storage, host="127.0.0.1", port=8123, artifact_dir=folder)
    assert folder.is_dir()
    [(given, options)] = calls
    assert given is storage
    assert (options["host"], options["port"]) == ("127.0.0.1", 8123)
    store = options["artifact_store"]
    assert isinstance(store, FileSystemArtifactStore)
    store.write("probe", io.BytesIO(b"artifact"))  # lands in the folder the dashboard serves
    assert (folder / "probe").read_bytes() == b"artifact"
