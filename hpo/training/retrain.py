"""A trial's configuration trained again from scratch on train + validation (`hpo retrain`).

The search held the validation split out to judge trials; once a configuration is chosen,
its final model may learn from that data too. It trains for the epochs the trial trained
(patience ended some early; with no validation data left to watch, it is not used), with
the trial's seed, and is judged once on the test split, which neither run has seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial

from hpo.config.spec import StudySpec
from hpo.storage import _optuna
from hpo.study.space import split_params, suggest_params
from hpo.training.data import Dataset
from hpo.training.loop import TrainConfig, evaluate, train
from hpo.training.modelentry import create_network, entry_record
from hpo.training.modelfile import RawInputModel, model_record, wrap
from hpo.training.objective import trial_seed


@dataclass(frozen=True)
class Retrained:
    model: RawInputModel  # the network behind its standardization, on the CPU, eval mode
    record: dict[str, Any]  # what rebuilding it takes (hpo.training.modelfile)
    test_accuracy: float
    epochs: int
    seconds: float  # wall time of the training


def retrain(
    spec: StudySpec, trial: FrozenTrial, data: Dataset, *, epochs: int | None = None
) -> Retrained:
    """Train `trial`'s configuration on `data` (train + validation merged by the caller)."""
    # FixedTrial answers each suggest_* with the trial's value; fixed entries pass through.
    params = suggest_params(optuna.trial.FixedTrial(trial.params), spec.space)
    model_params, train_params = split_params(params, own=spec.entry is not None)
    train_params.pop("patience", None)
    epochs = epochs or int(trial.user_attrs.get("epochs") or spec.train.epochs)
    first = trial.system_attrs.get("retry_history", [trial.number])[0]  # a retry's seed
    seed = trial_seed(spec.data.seed, first)
    torch.manual_seed(seed)
    net = create_network(spec, data.in_shape, data.num_classes, model_params)
    result = train(net, data, TrainConfig(epochs=epochs, seed=seed, **train_params))
    _, test_accuracy = evaluate(net, data.test)
    record = model_record(
        model=spec.model,
        params=params,
        model_params=model_params,
        data=data,
        seed=seed,
        entry=entry_record(spec),
    )
    model = wrap(net.to("cpu"), data).eval()
    return Retrained(model, record, test_accuracy, epochs, result.seconds)


def record_retrain(study: optuna.Study, trial: FrozenTrial, retrained: Retrained) -> bool:
    """Note the retrain on the trial (`hpo best` shows it); False where the storage cannot
    write a finished trial's attrs (behind `hpo proxy`)."""
    storage = _optuna.rdb_storage(_optuna.study_storage(study))
    if storage is None:
        return False
    attrs = {
        "retrain_test_accuracy": retrained.test_accuracy,
        "retrain_epochs": retrained.epochs,
        "retrain_seconds": round(retrained.seconds, 3),
    }
    _optuna.annotate_finished_trial(storage, _optuna.trial_id(trial), attrs)
    trial.user_attrs.update(attrs)
    return True
