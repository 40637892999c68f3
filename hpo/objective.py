"""The bridge: trial -> params -> model -> train -> validation metric."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable

import optuna
import torch

from hpo.checkpoint import CheckpointStore, original_number, trial_checkpoints
from hpo.data import Dataset
from hpo.diagnostics import diagnostic_batch, record_layer_stats
from hpo.space import split_params, suggest_params
from hpo.spec import StudySpec
from hpo.train import EpochResult, TrainConfig, TrainResult, evaluate, num_outputs, train
from models import create_model

HOST = platform.node()


class Objective:
    """Callable objective for one worker: data is loaded once and reused by every trial."""

    def __init__(
        self,
        spec: StudySpec,
        data: Dataset,
        *,
        should_stop: Callable[[], bool] | None = None,
        checkpoints: CheckpointStore | None = None,
    ) -> None:
        self.spec = spec
        self.data = data
        self.should_stop = should_stop
        self.checkpoints = checkpoints  # None: no epoch checkpoints, a retry starts over
        self.device = data.train.x.device

    def __call__(self, trial: optuna.Trial) -> float:
        params = suggest_params(trial, self.spec.space)
        model_params, train_params = split_params(params)
        # Seeds tie a trial's weight init and batch order to its number: reruns reproduce.
        # A retry keeps its first attempt's number, so resuming continues the same shuffles.
        seed = self.spec.data.seed * 1_000_003 + original_number(trial)
        torch.manual_seed(seed)
        model = create_model(
            self.spec.model,
            in_shape=self.data.in_shape,
            num_outputs=num_outputs(self.data.num_classes),
            **model_params,
        )
        trial.set_user_attr("n_params", sum(p.numel() for p in model.parameters()))
        trial.set_user_attr("device", _device_name(self.device))
        trial.set_user_attr("host", HOST)
        record_layer_stats(trial, "init", model, diagnostic_batch(self.data))
        config = TrainConfig(epochs=self.spec.train.epochs, seed=seed, **train_params)
        started = time.perf_counter()

        def report(result: EpochResult) -> None:
            trial.report(self.metric_of(result), result.epoch)
            if trial.should_prune():
                # Seconds-to-target comparisons count pruned trials' training too.
                _record_progress(trial, result.epoch, time.perf_counter() - started)
                record_layer_stats(trial, "final", model, diagnostic_batch(self.data))
                raise optuna.TrialPruned(f"pruned after epoch {result.epoch}")

        with trial_checkpoints(self.checkpoints, trial, params, self.device) as saved:
            resume = saved.resume if saved else None
            if resume is not None:
                trial.set_user_attr("resumed_from_epoch", resume.epoch)
                for earlier in resume.history:  # the pruner compares whole learning curves
                    trial.report(self.metric_of(earlier), earlier.epoch)
            result = train(
                model,
                self.data,
                config,
                on_epoch=report,
                should_stop=self.should_stop,
                checkpoint=saved.save if saved else None,
                resume=resume,
            )
        _record_result(trial, result)
        record_layer_stats(trial, "final", model, diagnostic_batch(self.data))
        _, test_accuracy = evaluate(model, self.data.test)
        trial.set_user_attr("test_accuracy", test_accuracy)
        return self.metric_of(result.final)

    def metric_of(self, result: EpochResult) -> float:
        return result.val_accuracy if self.spec.metric == "val_accuracy" else result.val_loss


def _record_progress(trial: optuna.Trial, epochs: int, seconds: float) -> None:
    trial.set_user_attr("epochs", epochs)
    trial.set_user_attr("train_seconds", round(seconds, 4))


def _record_result(trial: optuna.Trial, result: TrainResult) -> None:
    trial.set_user_attr("epochs", result.final.epoch)
    trial.set_user_attr("train_seconds", round(result.seconds, 4))
    trial.set_user_attr("samples_per_s", round(result.samples_per_second, 1))


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.current_device()} ({torch.cuda.get_device_name(device)})"
    return "cpu"
