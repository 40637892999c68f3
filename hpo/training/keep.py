"""The weights of a study's best `keep` completed trials, kept in the artifact store.

A trial that completes offers its final model just before it is told (a running trial may
still record artifacts): if it ranks among the best `keep` of the trials that hold weights,
it is uploaded with optuna.artifacts.upload_artifact (optuna-dashboard lists it under the
trial), and every holder that falls out of the top `keep` loses its file and has its record
set to null, as the dashboard does when it deletes an artifact. Only the holders are read
(one bounded statement on a database), never the whole study: per trial one read, at most
one upload and, in steady state, one removal.

Holders stay the best `keep` of the finished trials because a trial that ranks outside the
top never ranks inside it later. Two workers that keep a model at the same moment may leave
`keep + 1` for a while: the next offer, or each worker's `trim` when it ends, removes it. A
holder that is not COMPLETE (its worker died after the upload) is removed too; a RUNNING one
is left to its worker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import TrialState

from hpo.storage import _optuna
from hpo.training.modelfile import MODEL_FILE, RawInputModel, save_model

log = logging.getLogger("hpo.training.keep")
ARTIFACT_PREFIX = "artifacts:"  # the trial system attr key upload_artifact writes, + its id


@dataclass(frozen=True)
class Holder:
    """A trial that holds kept weights."""

    trial_id: int
    number: int
    state: TrialState
    value: float | None
    artifact_id: str
    key: str  # its trial system attr


def kept_models(study: optuna.Study, store: FileSystemArtifactStore) -> list[Holder]:
    """The trials of `study` whose weights are in the store, read without a study scan on a
    database (behind the proxy, from the trials its cache holds)."""
    rdb = _optuna.rdb_storage(_optuna.study_storage(study))
    if rdb is not None:
        rows = _trial_attrs_with_prefix(rdb, _optuna.study_id(study))
        found = [(_meta(meta), Holder(t, n, s, v, "", key)) for t, n, s, v, key, meta in rows]
    else:
        found = [
            (_meta(meta), Holder(_optuna.trial_id(t), t.number, t.state, t.value, "", key))
            for t in study.get_trials(deepcopy=False)
            for key, meta in t.system_attrs.items()
            if key.startswith(ARTIFACT_PREFIX) and meta is not None
        ]
    holders = [
        Holder(h.trial_id, h.number, h.state, h.value, meta["artifact_id"], h.key)
        for meta, h in found
        if meta.get("filename") == MODEL_FILE and meta.get("artifact_id")
    ]
    if rdb is None:  # a removed model's record stays behind the proxy: ask the store
        holders = [h for h in holders if _in_store(store, h.artifact_id)]
    return holders


class ModelKeeper:
    """Keeps the weights of the best `keep` completed trials of a study (see the module)."""

    def __init__(self, artifacts: str | Path, keep: int, direction: str) -> None:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        self.store = WholeFileStore(str(artifacts))
        self.keep = keep
        self.maximize = direction == "maximize"

    def offer(
        self,
        trial: optuna.Trial,
        value: float,
        model: RawInputModel,
        record: Mapping[str, Any],
    ) -> bool:
        """Keep `trial`'s model if it ranks among the best; True if it was kept.

        OSError if the file cannot be written (a full disk): nothing is kept or removed.
        """
        holders = kept_models(trial.study, self.store)
        candidate = Holder(
            _optuna.trial_id(trial), trial.number, TrialState.COMPLETE, value, "", ""
        )
        winners = self._best([*holders, candidate])
        kept = candidate in winners
        if kept:
            self._upload(trial, model, record)
        self._remove(trial.study, [h for h in holders if h not in winners])
        return kept

    def trim(self, study: optuna.Study) -> None:
        """Remove the weights of holders outside the best `keep` (after concurrent offers)."""
        holders = kept_models(study, self.store)
        winners = self._best(holders)
        self._remove(study, [h for h in holders if h not in winners])

    def _best(self, holders: list[Holder]) -> list[Holder]:
        """The best `keep` completed holders (ties: the earlier trial), and the running ones."""
        ranked = sorted(
            (h for h in holders if h.state == TrialState.COMPLETE and h.value is not None),
            key=lambda h: (-h.value if self.maximize else h.value, h.number),  # type: ignore[operator]
        )
        return ranked[: self.keep] + [h for h in holders if h.state == TrialState.RUNNING]

    def _upload(self, trial: optuna.Trial, model: RawInputModel, record: Mapping[str, Any]) -> None:
        with tempfile.TemporaryDirectory(prefix="hpo-keep-") as folder:
            path = Path(folder) / MODEL_FILE  # the name the store records
            save_model(path, model, record)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                upload_artifact(
                    artifact_store=self.store, file_path=str(path), study_or_trial=trial
                )

    def _remove(self, study: optuna.Study, holders: list[Holder]) -> None:
        rdb = _optuna.rdb_storage(_optuna.study_storage(study))
        for holder in holders:
            with contextlib.suppress(ArtifactNotFound):  # another worker removed it first
                self.store.remove(holder.artifact_id)
            if rdb is not None:
                _clear(rdb, holder.trial_id, holder.key)
            log.info("trial %d's weights removed: no longer among the best", holder.number)


class WholeFileStore(FileSystemArtifactStore):
    """Optuna's artifact folder, minus the partial file a failed write (a full disk) leaves."""

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        try:
            super().write(artifact_id, content_body)
        except OSError:
            with contextlib.suppress(OSError, ArtifactNotFound):
                self.remove(artifact_id)
            raise


def model_keeper(artifacts: str | Path | None, keep: int, direction: str) -> ModelKeeper | None:
    """A keeper, or None when nothing is kept (keep = 0, or no artifact folder): no cost."""
    if not artifacts or keep <= 0:
        return None
    return ModelKeeper(artifacts, keep, direction)


def _trial_attrs_with_prefix(rdb: Any, study_id: int) -> list[tuple[Any, ...]]:
    """hpo's storage reads them retrying through an outage (a plain RDBStorage: once)."""
    if hasattr(rdb, "trial_attrs_with_prefix"):
        return rdb.trial_attrs_with_prefix(study_id, ARTIFACT_PREFIX)
    return _optuna.trial_attrs_with_prefix(rdb, study_id, ARTIFACT_PREFIX)


def _clear(rdb: Any, trial_id: int, key: str) -> None:
    """hpo's storage writes it retrying through an outage (a plain RDBStorage: once)."""
    if hasattr(rdb, "clear_trial_system_attr"):
        rdb.clear_trial_system_attr(trial_id, key)
    else:
        _optuna.clear_trial_system_attr(rdb, trial_id, key)


def _meta(value: Any) -> dict[str, Any]:
    """An artifact's metadata: JSON text (twice encoded as a database row holds it)."""
    for _ in range(2):
        if isinstance(value, str):
            value = json.loads(value)
    return value if isinstance(value, dict) else {}


def _in_store(store: FileSystemArtifactStore, artifact_id: str) -> bool:
    try:
        store.open_reader(artifact_id).close()
    except ArtifactNotFound:
        return False
    return True
