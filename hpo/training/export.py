"""A trial's model as a folder anyone can load, and `hpo.load_model` that loads it.

The folder holds model.pt (plain tensors, hpo.training.modelfile), model.json (how to
rebuild the network, the classes, the raw-input scaling, the trial's value and metrics,
the study's name, hpo's and torch's versions; never the storage's URL) and the study's
trials as trials.csv or trials.jsonl. `hpo export` fills it from the weights a study kept
(hpo.training.keep), `hpo retrain` from a model trained again.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore, download_artifact
from optuna.trial import FrozenTrial

from hpo.errors import HpoError
from hpo.storage._optuna import trial_id
from hpo.study.front import FrontMarks
from hpo.study.table import TABLE_FILES, trial_rows, write_table
from hpo.training.keep import kept_models
from hpo.training.modelfile import MODEL_FILE, RawInputModel, read_model, rebuild, save_model

JSON_FILE = "model.json"
# The user attrs model.json repeats: what the trial scored and cost, and any retrain of it.
MAIN_ATTRS = (
    "test_accuracy",
    "n_params",
    "epochs",
    "train_seconds",
    "stopped_early_at",
    "retrain_test_accuracy",
    "retrain_epochs",
    "retrain_seconds",
)


def load_model(path: str | Path) -> RawInputModel:
    """The model of an `hpo export` / `hpo retrain` folder (or its model.pt), in eval mode.

    It takes raw samples, as the data set stores them (pixels 0-255, digits' 0-16, raw
    features), uint8 or float, shaped (N, C, H, W) or (N, F), and returns one score per
    class: ``load_model(DIR)(raw).argmax(1)`` are class indices, named in model.json.
    """
    path = Path(path)
    return rebuild(*read_model(path / MODEL_FILE if path.is_dir() else path))


def check_out_dir(out: Path, *, force: bool) -> None:
    """Refuse, before anything is read or written, a folder that would be overwritten."""
    if out.exists() and not out.is_dir():
        raise HpoError(f"--out {out} is a file; name a folder for the model")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise HpoError(
            f"--out {out} is not empty; pass --force to overwrite its model files, or name "
            "a new folder"
        )


def kept_model(
    study: optuna.Study, trial: FrozenTrial, artifacts: str | Path
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(record, state dict) of the weights the study kept for `trial`; HpoError if none."""
    store = FileSystemArtifactStore(str(artifacts))
    found = [h for h in kept_models(study, store) if h.trial_id == trial_id(trial)]
    if not found:
        name = study.study_name
        raise HpoError(
            f"trial {trial.number} of study {name!r} has no kept weights in {artifacts} (a "
            "study keeps those of its best `[study] keep` trials); train it again with "
            f"`hpo retrain {name} --trial {trial.number} --out DIR`"
        )
    with tempfile.TemporaryDirectory(prefix="hpo-export-") as folder:
        path = Path(folder) / MODEL_FILE
        download_artifact(
            artifact_store=store, file_path=str(path), artifact_id=found[0].artifact_id
        )
        return read_model(path)


def about_trial(study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
    """What model.json says about where a model comes from and what it scored."""
    metric = study.metric_names[0] if study.metric_names else "value"
    return {
        "study": study.study_name,
        "trial": trial.number,
        "metric": metric,
        "direction": study.direction.name.lower(),
        "value": trial.value,
        "metrics": {k: trial.user_attrs[k] for k in MAIN_ATTRS if k in trial.user_attrs},
        "hpo_version": _hpo_version(),
        "torch_version": torch.__version__,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_export(
    out: Path,
    model: RawInputModel,
    record: Mapping[str, Any],
    about: Mapping[str, Any],
    trials: list[FrozenTrial],
    *,
    table_format: str = "csv",
    front: FrontMarks | None = None,
) -> list[Path]:
    """Write model.pt, model.json and the trials table into `out`; the paths written.
    `front`: a multi-objective study's marks (which trials are on its Pareto front)."""
    out.mkdir(parents=True, exist_ok=True)
    files = [out / MODEL_FILE, out / JSON_FILE, out / TABLE_FILES[table_format]]
    save_model(files[0], model, record)
    files[1].write_text(json.dumps({**record, **about}, indent=2) + "\n", encoding="utf-8")
    write_table(trial_rows(trials, front), files[2], table_format)
    for name in set(TABLE_FILES.values()) - {files[2].name}:  # --force: no stale table left
        (out / name).unlink(missing_ok=True)
    return files


def _hpo_version() -> str:
    try:
        return metadata.version("hpo")
    except metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"
