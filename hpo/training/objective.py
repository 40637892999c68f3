"""The bridge: trial -> params -> model -> train -> validation metric."""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable
from typing import Any

import optuna
import torch

from hpo.config.objectives import (
    broken_text,
    constraint_values,
    needs_latency,
    objective_values,
)
from hpo.config.spec import StudySpec
from hpo.errors import StorageError
from hpo.storage._optuna import params_in_one_transaction, set_constraints, set_user_attrs
from hpo.study.space import split_params, suggest_params
from hpo.training.checkpoint import CheckpointStore, original_number, trial_checkpoints
from hpo.training.data import Dataset
from hpo.training.diagnostics import diagnostic_batch, record_layer_stats
from hpo.training.keep import ModelKeeper
from hpo.training.latency import latency_batch, latency_ms
from hpo.training.loop import DeviceTimer, EpochResult, TrainConfig, evaluate, num_outputs, train
from hpo.training.memory import check_built_fits, check_fits
from hpo.training.modelentry import create_network, entry_record
from hpo.training.modelfile import model_record, wrap

log = logging.getLogger("hpo.training.objective")
HOST = platform.node()
MB = 2**20  # peak_gpu_mb is in MiB, as nvidia-smi and torch.cuda.memory_summary count
# Trial user attrs saying what a failed write (a full disk) cost it: its checkpoints from
# that epoch on, or its kept weights. The trial itself goes on.
CHECKPOINT_ERROR_ATTR = "checkpoint_error"
KEEP_ERROR_ATTR = "keep_error"
# Trial user attr of a trial that broke a [constraints] limit before training: which one.
INFEASIBLE_ATTR = "infeasible"


class Objective:
    """Callable objective for one worker: data is loaded once and reused by every trial.

    A trial's user attrs are collected in a dict and written when it ends, however it ends
    (completed, pruned, failed), rather than one write at a time through the run; not when
    the storage is lost (its retries are over: writing would only wait them out again).
    """

    def __init__(
        self,
        spec: StudySpec,
        data: Dataset,
        *,
        should_stop: Callable[[], bool] | None = None,
        checkpoints: CheckpointStore | None = None,
        keeper: ModelKeeper | None = None,
    ) -> None:
        self.spec = spec
        self.data = data
        self.should_stop = should_stop
        self.checkpoints = checkpoints  # None: no epoch checkpoints, a retry starts over
        self.keeper = keeper  # None: no weights kept ([study] keep = 0)
        self.device = data.train.device
        self.write_errors_logged: set[str] = set()  # attrs whose write error was logged

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        attrs: dict[str, Any] = {}
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        try:
            value = self._run(trial, attrs)
        except StorageError:
            raise  # the storage is lost: writing attrs would only wait out its retries again
        except BaseException:
            self._record(trial, attrs)
            raise
        self._record(trial, attrs)
        return value

    def _record(self, trial: optuna.Trial, attrs: dict[str, Any]) -> None:
        if self.device.type == "cuda":  # the data set included: what a trial occupies
            attrs["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(self.device) / MB, 1)
        set_user_attrs(trial, attrs)  # one transaction, however many attrs

    def _run(self, trial: optuna.Trial, attrs: dict[str, Any]) -> float | tuple[float, ...]:
        with params_in_one_transaction(trial):  # not one each
            params = suggest_params(trial, self.spec.space)
        model_params, train_params = split_params(params, own=self.spec.entry is not None)
        # Seeds tie a trial's weight init and batch order to its number: reruns reproduce.
        # A retry keeps its first attempt's number, so resuming continues the same shuffles.
        seed = trial_seed(self.spec.data.seed, original_number(trial))
        torch.manual_seed(seed)
        outputs = num_outputs(self.data.num_classes)
        estimate = check_fits(self.spec, params, self.data.in_shape, outputs, self.device)
        model = create_network(self.spec, self.data.in_shape, self.data.num_classes, model_params)
        if estimate is None:  # an own network the meta device could not trace
            check_built_fits(self.spec, model, params, self.device)
        attrs["n_params"] = sum(p.numel() for p in model.parameters())
        attrs["device"] = _device_name(self.device)
        attrs["host"] = HOST
        self._diagnose(attrs, "init", model)
        measured = self._measure_cost(trial, model, attrs)
        if INFEASIBLE_ATTR in attrs:  # over a limit: ends now, what it scores untrained
            loss, accuracy = evaluate(model.to(self.device), self.data.val)
            measured |= {"val_loss": loss, "val_accuracy": accuracy, "train_seconds": 0.0}
            return objective_values(self.spec.objectives, measured)
        config = TrainConfig(epochs=self.spec.train.epochs, seed=seed, **train_params)
        timer = DeviceTimer(self.device)
        started = time.perf_counter()

        multi = len(self.spec.objectives) > 1  # Optuna takes no intermediate values then
        epoch_seconds: list[float] = []  # each epoch's seconds: what a replay charges
        epoch_started = [started]

        def report(result: EpochResult) -> None:
            now = time.perf_counter()
            epoch_seconds.append(round(now - epoch_started[0], 4))
            epoch_started[0] = now
            attrs["epoch_seconds"] = epoch_seconds
            if multi:
                return
            trial.report(self.metric_of(result), result.epoch)
            if trial.should_prune():
                # Seconds-to-target comparisons count pruned trials' training too.
                attrs.update(_progress(result.epoch, time.perf_counter() - started, timer))
                self._diagnose(attrs, "final", model)
                raise optuna.TrialPruned(f"pruned after epoch {result.epoch}")

        def checkpoint_lost(error: OSError) -> None:
            reason = f"checkpoint not written ({error}); the trial trained on without them"
            self._write_failed(trial, attrs, CHECKPOINT_ERROR_ATTR, reason)

        with trial_checkpoints(
            self.checkpoints,
            trial,
            params,
            self.device,
            model=model,
            epochs=config.epochs,
            on_error=checkpoint_lost,
        ) as saved:
            resume = saved.resume if saved else None
            if resume is not None:
                attrs["resumed_from_epoch"] = resume.epoch
                for earlier in (
                    resume.history if not multi else ()
                ):  # the pruner compares whole learning curves
                    trial.report(self.metric_of(earlier), earlier.epoch)
            result = train(
                model,
                self.data,
                config,
                on_epoch=report,
                should_stop=self.should_stop,
                checkpoint=saved.save if saved else None,
                resume=resume,
                timer=timer,
            )
        attrs.update(_progress(result.final.epoch, result.seconds, timer))
        if result.stopped_early_at is not None:  # patience ended it: a COMPLETE trial
            attrs["stopped_early_at"] = result.stopped_early_at
        attrs["samples_per_s"] = round(result.samples_per_second, 1)
        attrs.update(result.step_attrs)  # step_mode(_reason), where a CUDA graph was asked for
        self._diagnose(attrs, "final", model)
        _, attrs["test_accuracy"] = evaluate(model, self.data.test)
        # The last epoch's value, also after an early stop: it is the model the trial ends
        # with (test_accuracy above measures it), and picking the best epoch on the
        # validation data would flatter the trial to the sampler.
        value = self.metric_of(result.final)
        measured |= {
            "val_accuracy": result.final.val_accuracy,
            "val_loss": result.final.val_loss,
            "train_seconds": result.seconds,
        }
        if self.keeper is not None:
            record = model_record(
                model=self.spec.model,
                params=params,
                model_params=model_params,
                data=self.data,
                seed=seed,
                entry=entry_record(self.spec),
            )
            try:
                self.keeper.offer(trial, value, wrap(model, self.data), record)
            except OSError as exc:  # a full disk costs the kept weights, not the trial
                reason = f"weights not kept: the file could not be written ({exc})"
                self._write_failed(trial, attrs, KEEP_ERROR_ATTR, reason)
        return objective_values(self.spec.objectives, measured)

    def _measure_cost(
        self, trial: optuna.Trial, model: torch.nn.Module, attrs: dict[str, Any]
    ) -> dict[str, float]:
        """The network's cost (params; latency_ms when a metric or limit needs it), and its
        [constraints] values set on the trial (Optuna's `constraints` system attr, <= 0
        feasible), before any training: a network over a limit is known infeasible at once,
        and costs no training. INFEASIBLE_ATTR says why."""
        measured: dict[str, float] = {"params": float(attrs["n_params"])}
        spec = self.spec
        if needs_latency(spec.objectives, spec.constraints):
            x = latency_batch(
                self.data.val.inputs(slice(0, spec.latency_batch)), spec.latency_batch
            )
            measured["latency_ms"] = latency_ms(model.to(self.device), x)
            attrs["latency_ms"] = round(measured["latency_ms"], 4)
            attrs["latency_batch"] = spec.latency_batch
        constraints = constraint_values(spec.constraints, measured)
        if constraints:  # in ConstraintSpec's order: max_params, then max_latency_ms
            set_constraints(trial, list(constraints.values()))
        broken = broken_text(spec.constraints, measured)
        if broken:
            attrs[INFEASIBLE_ATTR] = broken
        return measured

    def _write_failed(
        self, trial: optuna.Trial, attrs: dict[str, Any], key: str, reason: str
    ) -> None:
        """Record on the trial what a failed write cost it; log it once per worker."""
        attrs[key] = reason[:500]
        if key not in self.write_errors_logged:  # a full disk would repeat it every trial
            self.write_errors_logged.add(key)
            log.warning(
                "trial %d: %s (user attr %s; logged once, recorded on every trial it hits)",
                trial.number,
                reason,
                key,
            )

    def _diagnose(self, attrs: dict[str, Any], phase: str, model: torch.nn.Module) -> None:
        if self.spec.train.diagnostics:
            record_layer_stats(attrs, phase, model, diagnostic_batch(self.data))

    def metric_of(self, result: EpochResult) -> float:
        return result.val_accuracy if self.spec.metric == "val_accuracy" else result.val_loss


def trial_seed(data_seed: int, number: int) -> int:
    """The seed of a trial's weight init and batch order, from its first attempt's number."""
    return data_seed * 1_000_003 + number


def _progress(epochs: int, seconds: float, timer: DeviceTimer) -> dict[str, Any]:
    """How far a trial got and what it cost: wall seconds, and device seconds of training."""
    return {
        "epochs": epochs,
        "train_seconds": round(seconds, 4),
        "train_device_seconds": round(timer.seconds, 4),
    }


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.current_device()} ({torch.cuda.get_device_name(device)})"
    return "cpu"
