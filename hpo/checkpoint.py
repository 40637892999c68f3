"""Epoch checkpoints of running trials, so that a retried trial resumes instead of restarting.

After every epoch a trial's model, optimizer state and history are written to one file,
`ROOT/checkpoints/STUDY/trial-N.pt`, replaced atomically (only the latest epoch is kept).
When a worker dies, Optuna re-queues the trial as a new one whose system attr
`retry_history` lists the dead attempts; the retry loads the newest checkpoint among them
and continues from that epoch. A trial that ends (completed, pruned, failed) deletes its
files; only an interrupted or killed attempt leaves one behind, for its retry.

ROOT is the artifact folder (`--artifacts`, env HPO_ARTIFACTS) that optuna-dashboard also
reads; workers on several hosts must see the same folder (a shared volume) to resume each
other's trials. Without it a retry simply starts over.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import torch

from hpo.train import Checkpoint, EpochResult, StopRequested

log = logging.getLogger("hpo.checkpoint")
CHECKPOINT_EVERY = 30.0  # seconds of training between checkpoint writes of a trial


def retried_numbers(trial: optuna.Trial) -> list[int]:
    """Numbers of the earlier attempts of this trial, newest first (empty if none)."""
    system_attrs = trial.study._storage.get_trial_system_attrs(trial._trial_id)
    return list(reversed(system_attrs.get("retry_history", [])))


def original_number(trial: optuna.Trial) -> int:
    """The number of the first attempt: retries keep its seed, so they reproduce it."""
    history = retried_numbers(trial)
    return history[-1] if history else trial.number


class CheckpointStore:
    """The checkpoint files of one study."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        study_name: str,
        *,
        every_seconds: float = CHECKPOINT_EVERY,
    ) -> None:
        # Study names are free text; keep them from escaping the folder.
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", study_name).strip(".") or "study"
        self.folder = Path(root) / "checkpoints" / safe
        self.every_seconds = every_seconds

    def path(self, number: int) -> Path:
        return self.folder / f"trial-{number}.pt"

    def save(self, number: int, checkpoint: Checkpoint, params: dict[str, Any]) -> None:
        """Write atomically: a worker killed mid-write leaves the previous epoch intact."""
        self.folder.mkdir(parents=True, exist_ok=True)
        state = {
            "epoch": checkpoint.epoch,
            "model": checkpoint.model,
            "optimizer": checkpoint.optimizer,
            "history": [dataclasses.asdict(r) for r in checkpoint.history],
            "params": params,
            "rng": checkpoint.rng,  # dropout draws continue as in an unbroken run
        }
        handle, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".trial-{number}-")
        try:
            with os.fdopen(handle, "wb") as file:
                torch.save(state, file)
            os.replace(tmp, self.path(number))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(
        self, number: int, params: dict[str, Any], device: torch.device | str
    ) -> Checkpoint | None:
        """The trial's checkpoint, or None if absent, unreadable or for other params."""
        path = self.path(number)
        if not path.is_file():
            return None
        try:
            state = torch.load(path, map_location=device, weights_only=True)
        except Exception as exc:  # a torn or foreign file: start over rather than fail
            log.warning("ignoring unreadable checkpoint %s: %s", path, exc)
            return None
        if state.get("params") != params:
            log.warning("ignoring checkpoint %s: it was saved for other parameters", path)
            return None
        history = [EpochResult(**r) for r in state["history"]]
        return Checkpoint(
            state["epoch"], state["model"], state["optimizer"], history, state.get("rng")
        )

    def delete(self, *numbers: int) -> None:
        for number in numbers:
            self.path(number).unlink(missing_ok=True)


class TrialCheckpoints:
    """Checkpointing of one trial: what to resume from, and the per-epoch save hook."""

    def __init__(
        self,
        store: CheckpointStore,
        trial: optuna.Trial,
        params: dict[str, Any],
        device: torch.device | str,
    ) -> None:
        self.store = store
        self.number = trial.number
        self.params = params
        self.earlier = retried_numbers(trial)
        self.resume: Checkpoint | None = None
        self.last_saved = time.monotonic()  # the trial's start: nothing to lose before it
        for number in self.earlier:  # newest attempt first: it got furthest
            self.resume = store.load(number, params, device)
            if self.resume is not None:
                break

    def save(self, checkpoint: Checkpoint) -> None:
        """Write at most every `every_seconds` of training, and always on a stop request.

        Short epochs would otherwise spend more time writing model and optimizer state
        than a retry could ever save; a killed trial loses at most that much training.
        """
        now = time.monotonic()
        if not checkpoint.final and now - self.last_saved < self.store.every_seconds:
            return
        self.last_saved = now
        self.store.save(self.number, checkpoint, self.params)
        # Ours is now at least as far along: the dead attempts' files are no longer needed.
        self.store.delete(*self.earlier)

    def discard(self) -> None:
        self.store.delete(self.number, *self.earlier)


@contextlib.contextmanager
def trial_checkpoints(
    store: CheckpointStore | None,
    trial: optuna.Trial,
    params: dict[str, Any],
    device: torch.device | str,
) -> Iterator[TrialCheckpoints | None]:
    """Checkpoint a trial; delete its files when it ends, unless it was interrupted.

    An interrupted trial (StopRequested) is re-queued and its retry resumes from the file;
    every other ending (result, pruning, error) makes the checkpoint useless.
    """
    if store is None:
        yield None
        return
    checkpoints = TrialCheckpoints(store, trial, params, device)
    try:
        yield checkpoints
    except StopRequested:
        raise
    except BaseException:
        checkpoints.discard()
        raise
    checkpoints.discard()
