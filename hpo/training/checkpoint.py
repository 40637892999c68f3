"""Epoch checkpoints of running trials, so that a retried trial resumes instead of restarting.

After an epoch a trial's model, optimizer state and history are written to one file,
`ROOT/checkpoints/FOLDER/trial-N.pt`, replaced atomically (only the latest epoch is kept).
FOLDER is the study name's readable part plus a hash of all of it
(hpo.config.paths.safe_folder_name), so studies never share a folder however alike their names
(`a/b`, `a b`, `a_b`) and a long name makes a short path. When a worker dies, Optuna
re-queues the trial as a new one whose system attr `retry_history` lists the dead
attempts; the retry loads the newest checkpoint among them and continues from that epoch.
A trial that ends (completed, pruned, failed by its own code) deletes its files; an attempt
that is interrupted, killed, superseded or cut off from its storage leaves its file behind,
for its retry. A write that fails (a full disk) costs the checkpoints, never the trial: it
trains on without them and says so (`on_error`).

A file is believed only if it says it was written by this study (name and id in the
storage) and that earlier attempt, for the same params, and if what it holds is
consistent: epochs 1..n with n below the study's epochs, the values the attempt reported
to the storage, tensors of the model's shapes. Anything else is ignored with a warning and
the retry starts over: a checkpoint may save work, it must never fail or fake a trial.

ROOT is the artifact folder (`--artifacts`, env HPO_ARTIFACTS) that optuna-dashboard also
reads; workers on several hosts must see the same folder (a shared volume) to resume each
other's trials. Without it a retry simply starts over.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from torch import nn

from hpo.config.paths import safe_folder_name
from hpo.config.settings import CHECKPOINT_EVERY
from hpo.errors import StorageError
from hpo.storage import _optuna
from hpo.training.loop import Checkpoint, EpochResult, StopRequested
from hpo.training.modelfile import save_tensors

log = logging.getLogger("hpo.training.checkpoint")
_TEMP_PREFIX = ".trial-{number}-"  # a save in progress: written, then renamed into place
FORMAT = 2  # layout of the file; files of another layout are ignored
RESULT_FIELDS = frozenset(f.name for f in dataclasses.fields(EpochResult))


def retried_numbers(trial: optuna.Trial) -> list[int]:
    """Numbers of the earlier attempts of this trial, newest first (empty if none).

    From the trial as it was claimed: a retry's history is written when the retry is
    queued, before any claim, so reading it from the storage again (a round trip, once
    for the seed and once for the checkpoints) finds nothing new.
    """
    return list(reversed(_optuna.claimed_system_attrs(trial).get("retry_history", [])))


def original_number(trial: optuna.Trial) -> int:
    """The number of the first attempt: retries keep its seed, so they reproduce it."""
    history = retried_numbers(trial)
    return history[-1] if history else trial.number


class BadCheckpoint(Exception):
    """Why a checkpoint file is not resumed from (logged as a warning, never raised on)."""


@dataclass(frozen=True)
class Expected:
    """What a checkpoint must say about itself to be resumed from."""

    study_name: str
    trial_number: int  # the attempt whose file it is
    params: Mapping[str, Any]  # the trial's params: a file for others is someone else's
    study_id: int | None = None  # the study's id in the storage; None: not checked
    epochs: int | None = None  # epochs per trial: a checkpoint is of an unfinished run
    reported: Mapping[int, float] | None = None  # epoch -> value the attempt reported
    model: nn.Module | None = None  # the trial's model: the saved tensors must fit it
    device: torch.device | str = "cpu"  # where the RNG state will be restored


def check_state(state: object, expected: Expected) -> Checkpoint:
    """The checkpoint a loaded file holds; BadCheckpoint saying why if it is not believed."""
    if not isinstance(state, dict):
        raise BadCheckpoint(f"it holds a {type(state).__name__}, not a checkpoint")
    if state.get("format") != FORMAT:
        raise BadCheckpoint("it was written by another hpo version")
    _check_owner(state, expected)
    if state.get("params") != expected.params:
        raise BadCheckpoint("it was saved for other parameters")
    history = _history(state.get("history"))
    epoch = state.get("epoch")
    if epoch != len(history):
        raise BadCheckpoint(f"it claims epoch {epoch!r} but holds {len(history)} epoch(s)")
    if expected.epochs is not None and epoch >= expected.epochs:
        raise BadCheckpoint(f"it claims epoch {epoch} of {expected.epochs}: a finished run")
    if expected.reported is not None:
        _check_reported(history, expected.reported)
    model, optimizer = state.get("model"), state.get("optimizer")
    if not isinstance(model, dict) or not isinstance(optimizer, dict):
        raise BadCheckpoint("its model or optimizer state is missing")
    if expected.model is not None:
        _check_tensors(model, optimizer, expected.model)
    rng = state.get("rng")
    if rng is not None and not _fits_rng(rng, expected.device):
        raise BadCheckpoint("its random number generator state does not fit this device")
    return Checkpoint(epoch, model, optimizer, history, rng)


def _check_owner(state: dict[str, Any], expected: Expected) -> None:
    name, number, study_id = state.get("study"), state.get("trial"), state.get("study_id")
    ours = name == expected.study_name and number == expected.trial_number
    if expected.study_id is not None:
        ours = ours and study_id == expected.study_id
    if not ours:
        raise BadCheckpoint(
            f"it was written by trial {number!r} of study {name!r} (id {study_id!r}), not by "
            f"trial {expected.trial_number} of study {expected.study_name!r} "
            f"(id {expected.study_id!r})"
        )


def _history(records: object) -> list[EpochResult]:
    """The epoch results of 1..n, in order; BadCheckpoint if they are anything else."""
    if not isinstance(records, list) or not records:
        raise BadCheckpoint("its history is missing or empty")
    history: list[EpochResult] = []
    for epoch, record in enumerate(records, start=1):
        if not isinstance(record, dict) or set(record) != RESULT_FIELDS:
            raise BadCheckpoint(f"its history entry {epoch} is not an epoch result")
        result = EpochResult(**record)
        numbers = (result.train_loss, result.val_loss, result.val_accuracy)
        if result.epoch != epoch or not all(_is_number(v) for v in numbers):
            raise BadCheckpoint(f"its history entry {epoch} is not epoch {epoch}'s result")
        if not 0.0 <= result.val_accuracy <= 1.0:
            raise BadCheckpoint(f"its history entry {epoch} has an impossible accuracy")
        history.append(result)
    return history


def _check_reported(history: list[EpochResult], reported: Mapping[int, float]) -> None:
    """The history must hold what the attempt reported to the storage, epoch by epoch.

    An attempt reports each epoch right after checkpointing it, so every epoch before the
    checkpoint's last one was reported; the last one may not have been (the worker died in
    between), and epochs after it may have been (writes are throttled).
    """
    for result in history:
        value = reported.get(result.epoch)
        if value is None:
            if result.epoch < len(history):
                raise BadCheckpoint(f"epoch {result.epoch} was never reported by its trial")
            continue
        if not any(_close(value, v) for v in (result.val_accuracy, result.val_loss)):
            raise BadCheckpoint(
                f"its epoch {result.epoch} differs from what its trial reported ({value!r})"
            )


def _check_tensors(model: dict[str, Any], optimizer: dict[str, Any], into: nn.Module) -> None:
    """What load_state_dict would refuse (or a later optimizer step choke on)."""
    wanted = {key: tuple(t.shape) for key, t in into.state_dict().items()}
    saved = {key: tuple(t.shape) for key, t in model.items() if isinstance(t, torch.Tensor)}
    if saved != wanted:
        raise BadCheckpoint("its model tensors do not fit the trial's model")
    shapes = [tuple(p.shape) for p in into.parameters()]
    groups = optimizer.get("param_groups")
    state = optimizer.get("state")
    if not isinstance(groups, list) or not isinstance(state, dict):
        raise BadCheckpoint("its optimizer state is malformed")
    indices = [i for g in groups if isinstance(g, dict) for i in g.get("params", ())]
    if sorted(indices) != list(range(len(shapes))):
        raise BadCheckpoint("its optimizer state is for another model")
    for index, entry in state.items():
        tensors = entry.values() if isinstance(entry, dict) else None
        if tensors is None or index not in range(len(shapes)):
            raise BadCheckpoint("its optimizer state is malformed")
        for tensor in tensors:
            if isinstance(tensor, torch.Tensor) and tensor.dim() and tensor.shape != shapes[index]:
                raise BadCheckpoint("its optimizer state does not fit the trial's model")


def _fits_rng(rng: object, device: torch.device | str) -> bool:
    device = torch.device(device)
    current = torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()
    return isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8 and rng.shape == current.shape


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


class CheckpointStore:
    """The checkpoint files of one study."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        study_name: str,
        *,
        every_seconds: float = CHECKPOINT_EVERY,
    ) -> None:
        self.study_name = study_name
        self.folder = Path(root) / "checkpoints" / safe_folder_name(study_name)
        self.every_seconds = every_seconds

    def path(self, number: int) -> Path:
        return self.folder / f"trial-{number}.pt"

    def save(
        self,
        number: int,
        checkpoint: Checkpoint,
        params: dict[str, Any],
        *,
        study_id: int | None = None,
    ) -> None:
        """Write atomically: a worker killed mid-write leaves the previous epoch intact.

        The file names its writer (this study, `study_id` in the storage, trial `number`)
        so that no other study's or trial's retry resumes from it.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        state = {
            "format": FORMAT,
            "study": self.study_name,
            "study_id": study_id,
            "trial": number,
            "epoch": checkpoint.epoch,
            "model": checkpoint.model,
            "optimizer": checkpoint.optimizer,
            "history": [dataclasses.asdict(r) for r in checkpoint.history],
            "params": params,
            "rng": checkpoint.rng,  # dropout draws continue as in an unbroken run
        }
        handle, tmp = tempfile.mkstemp(dir=self.folder, prefix=_TEMP_PREFIX.format(number=number))
        try:
            with os.fdopen(handle, "wb") as file:
                save_tensors(state, file)
            os.replace(tmp, self.path(number))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(
        self,
        number: int,
        params: dict[str, Any],
        device: torch.device | str,
        *,
        study_id: int | None = None,
        epochs: int | None = None,
        reported: Mapping[int, float] | None = None,
        model: nn.Module | None = None,
    ) -> Checkpoint | None:
        """Trial `number`'s checkpoint, or None (with a warning) if absent or not believed.

        `study_id`, `epochs`, `reported` and `model` are checked when given (see Expected).
        """
        path = self.path(number)
        if not path.is_file():
            return None
        expected = Expected(
            self.study_name, number, params, study_id, epochs, reported, model, device
        )
        try:
            state = torch.load(path, map_location=device, weights_only=True)
            return check_state(state, expected)
        except BadCheckpoint as exc:
            log.warning("ignoring checkpoint %s: %s; the trial starts over", path, exc)
        except Exception as exc:  # a torn or foreign file: start over rather than fail
            log.warning("ignoring unreadable checkpoint %s: %s; the trial starts over", path, exc)
        return None

    def delete(self, *numbers: int) -> None:
        """Remove the trials' checkpoints, and the half-written temporary files a worker
        killed in the middle of a save left behind (it never got to remove them)."""
        for number in numbers:
            self.path(number).unlink(missing_ok=True)
            for partial in self.folder.glob(f"{_TEMP_PREFIX.format(number=number)}*"):
                partial.unlink(missing_ok=True)


class TrialCheckpoints:
    """Checkpointing of one trial: what to resume from, and the per-epoch save hook."""

    def __init__(
        self,
        store: CheckpointStore,
        trial: optuna.Trial,
        params: dict[str, Any],
        device: torch.device | str,
        *,
        model: nn.Module | None = None,
        epochs: int | None = None,
        on_error: Callable[[OSError], None] | None = None,
    ) -> None:
        self.store = store
        self.number = trial.number
        self.params = params
        self.study_id = _optuna.study_id(trial.study)
        self.earlier = retried_numbers(trial)
        self.resume: Checkpoint | None = None
        self.last_saved = time.monotonic()  # the trial's start: nothing to lose before it
        self.on_error = on_error
        self.epochs = epochs  # the trial's last epoch is never written
        self.error: OSError | None = None  # a write failed: no more checkpoints this trial
        for number in self.earlier:  # newest attempt first: it got furthest
            if not store.path(number).is_file():
                continue
            self.resume = store.load(
                number,
                params,
                device,
                study_id=self.study_id,
                epochs=epochs,
                reported=_reported_values(trial, number),
                model=model,
            )
            if self.resume is not None:
                break

    def save(self, checkpoint: Checkpoint) -> None:
        """Write at most every `every_seconds` of training, and always on a stop request;
        never after the trial's last epoch.

        Short epochs would otherwise spend more time writing model and optimizer state
        than a retry could ever save; a killed trial loses at most that much training.
        A write that fails (a full disk, a folder gone) ends the trial's checkpoints, not
        the trial: `on_error` hears of it once, and training goes on.
        """
        if self.error is not None:
            return
        if not checkpoint.final and self.epochs is not None and checkpoint.epoch >= self.epochs:
            # The trial's last epoch: it ends next, and its ending deletes the file, so the
            # write could only serve a worker killed in the moment between (a one-epoch
            # trial wrote one file per trial for nothing).
            return
        now = time.monotonic()
        if not checkpoint.final and now - self.last_saved < self.store.every_seconds:
            return
        self.last_saved = now
        try:
            self.store.save(self.number, checkpoint, self.params, study_id=self.study_id)
        except OSError as exc:
            self.error = exc
            if self.on_error is not None:
                self.on_error(exc)
            return
        # Ours is now at least as far along: the dead attempts' files are no longer needed.
        self.store.delete(*self.earlier)

    def discard(self) -> None:
        self.store.delete(self.number, *self.earlier)


def _reported_values(trial: optuna.Trial, number: int) -> dict[int, float]:
    """What attempt `number` of this trial reported to the storage, by epoch."""
    storage = _optuna.study_storage(trial.study)
    attempt = storage.get_trial_id_from_study_id_trial_number(_optuna.study_id(trial.study), number)
    return dict(storage.get_trial(attempt).intermediate_values)


@contextlib.contextmanager
def trial_checkpoints(
    store: CheckpointStore | None,
    trial: optuna.Trial,
    params: dict[str, Any],
    device: torch.device | str,
    *,
    model: nn.Module | None = None,
    epochs: int | None = None,
    on_error: Callable[[OSError], None] | None = None,
) -> Iterator[TrialCheckpoints | None]:
    """Checkpoint a trial; delete its files when it ends (see `ends_trial`), else keep them.

    `model` (freshly built) and `epochs` (per trial) let a retry refuse a checkpoint that
    does not fit them, and start over, instead of failing in load_state_dict or finishing
    a run it never trained. `on_error` hears of a checkpoint that could not be written.
    """
    if store is None:
        yield None
        return
    checkpoints = TrialCheckpoints(
        store, trial, params, device, model=model, epochs=epochs, on_error=on_error
    )
    try:
        yield checkpoints
    except BaseException as exc:
        if ends_trial(exc):
            checkpoints.discard()
        raise
    checkpoints.discard()


def ends_trial(error: BaseException) -> bool:
    """Whether a trial that raised `error` is over, so that its checkpoints are useless.

    Pruning and the trial's own failures end it. A stop request, a storage given up on, an
    attempt superseded by its retry (its heartbeats did not get through: the retry resumes
    from this file) and an interrupt (KeyboardInterrupt, SystemExit) leave the trial to be
    retried: deleting the file then would throw away the work the retry needs.
    """
    retried = (StopRequested, StorageError, optuna.exceptions.UpdateFinishedTrialError)
    return isinstance(error, Exception) and not isinstance(error, retried)
