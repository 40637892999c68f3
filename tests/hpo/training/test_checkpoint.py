"""Checkpoints: one folder per study, files that name their writer, contents checked.

A retry resumes only from its own study's and earlier attempt's file, and only if what
the file holds is consistent; any other file makes it start over and complete.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState

from hpo.config.spec import StudySpec, load_spec
from hpo.errors import StorageError, TrialTooLarge
from hpo.runtime.worker import claim_trial, load_study_data, run_worker
from hpo.storage import _optuna
from hpo.storage.open import open_storage
from hpo.study.create import open_study
from hpo.training.checkpoint import (
    BadCheckpoint,
    CheckpointStore,
    Expected,
    TrialCheckpoints,
    check_state,
    ends_trial,
    original_number,
    trial_checkpoints,
)
from hpo.training.loop import (
    Checkpoint,
    DivergedError,
    EpochResult,
    StopRequested,
    TrainConfig,
    num_outputs,
    train,
)
from models import create_model
from tests.helpers import study_text

EPOCHS = 4
SPACE = "depth = 1\nwidth = 8\nlr = 0.01\nbatch_size = 64"
# Every entry is fixed, so every trial (and every study) has exactly these params.
PARAMS = {"depth": 1, "width": 8, "lr": 0.01, "batch_size": 64}


def _spec(tmp_path: Path, name: str) -> StudySpec:
    path = tmp_path / f"{len(list(tmp_path.glob('*.toml')))}.toml"
    path.write_text(study_text(name, SPACE, trials=1, epochs=EPOCHS), encoding="utf-8")
    return load_spec(path)


def _genuine(spec: StudySpec, epochs: int = 2) -> Checkpoint:
    """The checkpoint a real attempt of the study's trial writes after `epochs` epochs."""
    data = load_study_data(spec)
    model = create_model(
        "mlp", in_shape=data.in_shape, num_outputs=num_outputs(data.num_classes), depth=1, width=8
    )
    saved: list[Checkpoint] = []
    config = TrainConfig(epochs=epochs, lr=0.01, batch_size=64)
    train(model, data, config, checkpoint=lambda c: saved.append(copy.deepcopy(c)))
    return saved[-1]


def _died_after(study: optuna.Study, storage: Any, checkpoint: Checkpoint) -> int:
    """Run the queued trial as a worker that reported `checkpoint`'s epochs, then died.

    Returns the dead attempt's number; its retry is queued, as after a missed heartbeat.
    """
    trial = claim_trial(study, storage)
    assert trial is not None
    for result in checkpoint.history:
        trial.report(result.val_accuracy, result.epoch)
    study.tell(trial, state=TrialState.FAIL)
    dead = _optuna.study_storage(study).get_trial(_optuna.trial_id(trial))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback()(study, dead)
    return trial.number


def _retry(study: optuna.Study, dead: int) -> optuna.trial.FrozenTrial:
    return next(t for t in study.get_trials() if dead in t.system_attrs.get("retry_history", []))


def test_similar_names_get_folders_of_their_own(tmp_path: Path) -> None:
    names = ["a/b", "a b", "a_b", "a:b", "数据", "模型", "..", "x" * 300]
    folders = [CheckpointStore(tmp_path, name).folder for name in names]
    assert len(set(folders)) == len(names)
    for folder in folders:
        assert folder.parent == tmp_path / "checkpoints"  # one component: cannot escape
        assert len(folder.name) <= 64
    assert CheckpointStore(tmp_path, "a b").folder.name.startswith("a_b")  # still readable


def test_deleting_a_trial_removes_what_a_killed_save_left_half_written(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, "s")
    store.folder.mkdir(parents=True)
    store.path(1).write_bytes(b"done")
    # What a worker SIGKILLed between mkstemp and the rename leaves: ours, and another trial's.
    (store.folder / ".trial-1-abc123").write_bytes(b"half")
    (store.folder / ".trial-12-def456").write_bytes(b"half")
    store.delete(1)
    assert sorted(p.name for p in store.folder.iterdir()) == [".trial-12-def456"]


def test_a_300_character_study_name_saves_and_loads(tmp_path: Path) -> None:
    name = "long " * 60
    spec = _spec(tmp_path, "short")  # only the data and params matter here
    checkpoint = _genuine(spec, epochs=1)
    store = CheckpointStore(tmp_path, name)
    store.save(3, checkpoint, PARAMS, study_id=7)  # was: OSError "File name too long"
    loaded = store.load(3, PARAMS, "cpu", study_id=7)
    assert loaded is not None and loaded.epoch == 1


def test_a_retry_never_resumes_from_or_deletes_a_similar_named_studys_file(
    tmp_path: Path,
) -> None:
    """Seen: study `col_x`'s retry resumed from `col x`'s checkpoint, then deleted it."""
    storage = open_storage(f"sqlite:///{tmp_path / 'hpo.db'}")
    artifacts = tmp_path / "artifacts"
    other = open_study(storage, _spec(tmp_path, "col x"))
    ours = open_study(storage, _spec(tmp_path, "col_x"))
    checkpoint = _genuine(_spec(tmp_path, "col x"))
    other_dead = _died_after(other, storage, checkpoint)
    other_store = CheckpointStore(artifacts, "col x")
    other_store.save(other_dead, checkpoint, PARAMS, study_id=_optuna.study_id(other))
    dead = _died_after(ours, storage, checkpoint)
    assert dead == other_dead  # same trial number, same params: only the study differs

    run_worker(storage, "col_x", artifacts=artifacts, checkpoint_every=0)

    retry = _retry(ours, dead)
    assert retry.state == TrialState.COMPLETE
    assert "resumed_from_epoch" not in retry.user_attrs
    assert other_store.path(other_dead).is_file()  # the other study's retry still has it


# ------------------------------------------------------------ malformed and edited files


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    def edit(state: dict[str, Any]) -> dict[str, Any]:
        state[key] = value
        return state

    return edit


def _drop(key: str) -> Callable[[dict[str, Any]], Any]:
    def edit(state: dict[str, Any]) -> dict[str, Any]:
        del state[key]
        return state

    return edit


def _edit_history(edit_one: Callable[[list[dict[str, Any]]], None]) -> Callable[..., Any]:
    def edit(state: dict[str, Any]) -> dict[str, Any]:
        edit_one(state["history"])
        return state

    return edit


def _wrong_model_shape(state: dict[str, Any]) -> dict[str, Any]:
    key = next(iter(state["model"]))
    state["model"][key] = torch.zeros(5, 5)
    return state


def _wrong_optimizer_shape(state: dict[str, Any]) -> dict[str, Any]:
    state["optimizer"]["state"][0]["exp_avg"] = torch.zeros(7)
    return state


def _better_first_epoch(history: list[dict[str, Any]]) -> None:
    history[0]["val_accuracy"] = (history[0]["val_accuracy"] + 0.5) % 1.0


def _finished_run(state: dict[str, Any]) -> dict[str, Any]:
    """Claims all the study's epochs: resuming would finish the trial without training."""
    last = state["history"][-1]
    state["history"] += [{**last, "epoch": e} for e in range(3, EPOCHS + 1)]
    state["epoch"] = EPOCHS
    return state


def _gap(history: list[dict[str, Any]]) -> None:
    history[1]["epoch"] = 3


MALFORMED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "a list": lambda state: [state],
    "no history": _drop("history"),
    "model tensor of another shape": _wrong_model_shape,
    "optimizer tensor of another shape": _wrong_optimizer_shape,
    "edited history value": _edit_history(_better_first_epoch),
    "claims a finished run": _finished_run,
    "epoch is not the history's length": _set("epoch", 1),
    "epochs not consecutive": _edit_history(_gap),
    "another study's name": _set("study", "col x"),
    "another study's id": lambda state: _set("study_id", state["study_id"] + 1)(state),
    "another trial": _set("trial", 99),
    "another hpo version": _drop("format"),
    "no rng of this device": _set("rng", torch.zeros(3, dtype=torch.uint8)),
}


@dataclass
class DeadTrial:
    """A study whose only trial died after epoch 2, its genuine checkpoint on disk."""

    spec: StudySpec
    study: optuna.Study
    storage: Any
    store: CheckpointStore
    dead: int  # the dead attempt's number

    def expected(self) -> Expected:
        """What the retry expects of the dead attempt's file."""
        data = load_study_data(self.spec)
        outputs = num_outputs(data.num_classes)
        model = create_model("mlp", in_shape=data.in_shape, num_outputs=outputs, depth=1, width=8)
        storage = _optuna.study_storage(self.study)
        study_id = _optuna.study_id(self.study)
        attempt = storage.get_trial_id_from_study_id_trial_number(study_id, self.dead)
        reported = storage.get_trial(attempt).intermediate_values
        return Expected("ckpt", self.dead, PARAMS, study_id, EPOCHS, reported, model, "cpu")


@pytest.fixture
def dead_trial(tmp_path: Path) -> DeadTrial:
    storage = open_storage(f"sqlite:///{tmp_path / 'hpo.db'}")
    spec = _spec(tmp_path, "ckpt")
    study = open_study(storage, spec)
    checkpoint = _genuine(spec)
    dead = _died_after(study, storage, checkpoint)
    store = CheckpointStore(tmp_path / "artifacts", "ckpt", every_seconds=0)
    store.save(dead, checkpoint, PARAMS, study_id=_optuna.study_id(study))
    return DeadTrial(spec, study, storage, store, dead)


def test_a_genuine_checkpoint_is_resumed_from(dead_trial: DeadTrial, tmp_path: Path) -> None:
    study, storage, dead = dead_trial.study, dead_trial.storage, dead_trial.dead
    run_worker(storage, "ckpt", artifacts=tmp_path / "artifacts", checkpoint_every=0)
    retry = _retry(study, dead)
    assert retry.state == TrialState.COMPLETE
    assert retry.user_attrs["resumed_from_epoch"] == 2
    assert sorted(retry.intermediate_values) == list(range(1, EPOCHS + 1))


@pytest.mark.parametrize(
    "case",
    [
        "a list",
        "no history",
        "model tensor of another shape",
        "edited history value",
        "claims a finished run",
        "another study's id",
    ],
)
def test_a_malformed_or_edited_checkpoint_makes_the_retry_start_over(
    dead_trial: DeadTrial, tmp_path: Path, case: str
) -> None:
    study, storage, store, dead = (
        dead_trial.study,
        dead_trial.storage,
        dead_trial.store,
        dead_trial.dead,
    )
    state = torch.load(store.path(dead), weights_only=True)
    torch.save(MALFORMED[case](state), store.path(dead))

    report = run_worker(storage, "ckpt", artifacts=tmp_path / "artifacts", checkpoint_every=0)

    assert report.states == {"COMPLETE": 1}
    retry = _retry(study, dead)
    assert retry.state == TrialState.COMPLETE
    assert "resumed_from_epoch" not in retry.user_attrs
    assert sorted(retry.intermediate_values) == list(range(1, EPOCHS + 1))  # all trained
    assert not store.path(dead).exists()  # the finished trial cleaned up


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_check_state_refuses_each_malformed_checkpoint(dead_trial: DeadTrial, case: str) -> None:
    state = torch.load(dead_trial.store.path(dead_trial.dead), weights_only=True)
    expected = dead_trial.expected()
    assert check_state(copy.deepcopy(state), expected).epoch == 2  # the untouched file is fine
    with pytest.raises(BadCheckpoint):
        check_state(MALFORMED[case](state), expected)


def test_a_stop_request_checkpoints_at_once_however_recent_the_last_one(tmp_path: Path) -> None:
    """Periodic checkpoints are throttled (here to one an hour, none yet); the one a stop
    request takes is not, or SIGTERM would lose every epoch since the last one."""
    storage = open_storage(f"sqlite:///{tmp_path / 'hpo.db'}")
    spec = _spec(tmp_path, "stop")
    study = open_study(storage, spec)
    trial = claim_trial(study, storage)
    assert trial is not None
    store = CheckpointStore(tmp_path / "artifacts", "stop", every_seconds=3600)
    checkpoints = TrialCheckpoints(store, trial, PARAMS, "cpu", epochs=EPOCHS)
    data = load_study_data(spec)
    model = create_model(
        "mlp", in_shape=data.in_shape, num_outputs=num_outputs(data.num_classes), depth=1, width=8
    )
    epochs: list[int] = []

    with pytest.raises(StopRequested):
        train(
            model,
            data,
            TrainConfig(epochs=EPOCHS, lr=0.01, batch_size=64),
            on_epoch=lambda result: epochs.append(result.epoch),
            checkpoint=checkpoints.save,
            should_stop=lambda: len(epochs) == 2,  # a SIGTERM during epoch 2
        )

    saved = torch.load(store.path(trial.number), weights_only=True)
    assert saved["epoch"] == 2  # epochs 1 and 2 were throttled; the stop's save was not


def test_a_second_retry_resumes_from_the_newest_attempt_with_the_first_ones_seed(
    tmp_path: Path,
) -> None:
    """Attempt 0 died after epoch 1, its retry 1 after epoch 2, both files left (a delete
    that did not get through): retry 2 resumes from epoch 2, and keeps attempt 0's seed."""
    storage = open_storage(f"sqlite:///{tmp_path / 'hpo.db'}")
    spec = _spec(tmp_path, "twice")
    study = open_study(storage, spec)
    store = CheckpointStore(tmp_path / "artifacts", "twice", every_seconds=0)
    study_id = _optuna.study_id(study)
    for epochs in (1, 2):
        checkpoint = _genuine(spec, epochs=epochs)
        store.save(_died_after(study, storage, checkpoint), checkpoint, PARAMS, study_id=study_id)
    retry = claim_trial(study, storage)
    assert retry is not None and retry.number == 2

    assert original_number(retry) == 0  # the seed of the first attempt, so runs reproduce
    checkpoints = TrialCheckpoints(store, retry, PARAMS, "cpu", epochs=EPOCHS)
    assert checkpoints.resume is not None and checkpoints.resume.epoch == 2


# ------------------------------------------------------------------ which endings delete it

ENDINGS: dict[str, tuple[BaseException | None, bool]] = {  # error: (raised, file kept)
    "completed": (None, False),
    "pruned": (optuna.TrialPruned("pruned after epoch 1"), False),
    "failed by its own code": (ValueError("a bug in the trial"), False),
    "diverged": (DivergedError("training loss became nan"), False),
    "too large": (TrialTooLarge("too large"), False),
    "storage given up on": (StorageError("storage unreachable after 300 s"), True),
    "superseded by its retry": (optuna.exceptions.UpdateFinishedTrialError("finished"), True),
    "stop requested": (StopRequested("stop requested before epoch 2"), True),
    "interrupted": (KeyboardInterrupt(), True),
    "exiting": (SystemExit(1), True),
}


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_only_a_trial_that_ends_deletes_its_checkpoint(tmp_path: Path, ending: str) -> None:
    """A lost storage, a stop, a superseded attempt or an interrupt leave the file to the
    retry; seen: a PostgreSQL outage past HPO_DB_RETRY_SECONDS deleted every running
    trial's checkpoint, and the retries started over."""
    error, kept = ENDINGS[ending]
    store = CheckpointStore(tmp_path, "endings", every_seconds=0)
    trial = optuna.create_study().ask()
    checkpoint = Checkpoint(1, {}, {}, [EpochResult(1, 0.5, 0.5, 0.5)], None)
    raised: list[BaseException] = []
    try:
        with trial_checkpoints(store, trial, PARAMS, "cpu") as saved:
            assert saved is not None
            saved.save(checkpoint)
            if error is not None:
                raise error
    except BaseException as exc:
        raised.append(exc)
    assert raised == ([] if error is None else [error])  # never swallowed
    assert store.path(trial.number).is_file() == kept
    if error is not None:
        assert ends_trial(error) is not kept


def test_a_failed_write_ends_the_trials_checkpoints_and_says_so_once(tmp_path: Path) -> None:
    """A full disk: the error is reported once, later epochs are not even tried, and the
    file of an earlier epoch stays for a retry."""
    store = CheckpointStore(tmp_path, "nospace", every_seconds=0)
    trial = optuna.create_study().ask()
    errors: list[OSError] = []
    checkpoints = TrialCheckpoints(store, trial, PARAMS, "cpu", on_error=errors.append)
    history = [EpochResult(e, 0.5, 0.5, 0.5) for e in (1, 2, 3)]
    checkpoints.save(Checkpoint(1, {}, {}, history[:1], None))
    tries = []

    def full(*args: object, **kwargs: object) -> None:
        tries.append(args)
        raise OSError(28, "No space left on device")

    store.save = full  # type: ignore[method-assign]
    checkpoints.save(Checkpoint(2, {}, {}, history[:2], None))
    checkpoints.save(Checkpoint(3, {}, {}, history, None, True))
    assert [str(e) for e in errors] == ["[Errno 28] No space left on device"]
    assert len(tries) == 1
    assert torch.load(store.path(trial.number), weights_only=True)["epoch"] == 1


@pytest.mark.parametrize(("epochs", "writes"), [(1, 0), (3, 2)])
def test_a_trial_writes_one_checkpoint_per_epoch_but_its_last(
    tmp_path: Path, write_study: Any, monkeypatch: pytest.MonkeyPatch, epochs: int, writes: int
) -> None:
    """File writes per trial, checkpoints unthrottled: the last epoch's file would be
    deleted as the trial ends, unread (was: one per epoch, so one-epoch trials wrote one
    useless file each)."""
    import hpo.training.checkpoint as checkpoint_module

    written: list[int] = []
    save = checkpoint_module.save_tensors
    monkeypatch.setattr(
        checkpoint_module, "save_tensors", lambda obj, file: (written.append(1), save(obj, file))
    )
    storage = open_storage(f"sqlite:///{tmp_path / 'hpo.db'}")
    spec = load_spec(write_study("writes", trials=2, epochs=epochs))
    open_study(storage, spec)
    report = run_worker(storage, spec.name, artifacts=tmp_path / "artifacts", checkpoint_every=0)
    assert report.states == {"COMPLETE": 2}
    assert len(written) == 2 * writes
    assert not list((tmp_path / "artifacts").rglob("trial-*.pt"))  # the ended trials' removed
