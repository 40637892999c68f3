"""The worker loop: claim a queued trial, run it with a heartbeat, record how it ended.

A worker needs only a study name and a storage: the spec comes from the study. It only
claims queued trials, and tops the queue up under the study lock when it finds it empty
(see hpo.study.create), so the study-wide budget holds however many workers join. It ends when
the whole budget has been queued and nothing is queued or running, when the study's
deadline passes (one for all workers, stored with the study: a running trial finishes, no
new one is taken, queued ones stay WAITING), when the study stops early (`[study]
stop_after`: each trial it finishes is recorded, and the record, an idle poll or the start
says when the study has stopped; its running trial finishes first), or when asked to stop
(SIGTERM / Ctrl-C: at the next epoch boundary, the trial re-queued).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from hpo.config.settings import CHECKPOINT_EVERY
from hpo.config.spec import StudySpec
from hpo.errors import ModelEntryError, StorageError, TrialTooLarge
from hpo.runtime.dataid import check_data, record_data
from hpo.storage._optuna import (
    cache_claimed_trial,
    claimed_trial,
    study_id,
    study_storage,
    tell,
    trial_id,
)
from hpo.storage.heartbeats import heartbeats_for, worker_name
from hpo.study.create import load_spec_from_storage, study_deadline, top_up
from hpo.study.records import WORKER_ATTR
from hpo.study.samplers import build_pruner, build_sampler, worker_seed
from hpo.study.stopping import record_trial, stopped_reason
from hpo.training.checkpoint import CheckpointStore
from hpo.training.data import Dataset, load_dataset
from hpo.training.keep import ModelKeeper, model_keeper
from hpo.training.loop import DivergedError, StopRequested
from hpo.training.memory import device_data_bytes
from hpo.training.modelentry import check_same_source
from hpo.training.objective import Objective
from hpo.training.userdata import identity, read_for_spec

log = logging.getLogger("hpo.runtime.worker")
POLL_SECONDS = 1.0  # how often an idle worker looks for re-queued trials
CLAIM_ROUNDS = 8  # claim-or-top-up rounds before an unlucky worker waits a poll


@dataclass
class WorkerReport:
    """What one worker did."""

    states: Counter[str] = field(default_factory=Counter)  # trials run, by how they ended
    seconds: float = 0.0  # wall time of the worker
    stopped: bool = False  # it was asked to stop (a signal, its launcher gone)

    @property
    def trials(self) -> int:
        return sum(self.states.values())


def run_worker(
    storage: optuna.storages.RDBStorage,
    study_name: str,
    *,
    worker_index: int = 0,
    device: torch.device | str = "cpu",
    data_dir: str | None = None,
    stop: threading.Event | None = None,
    artifacts: str | Path | None = None,
    checkpoint_every: float = CHECKPOINT_EVERY,
    on_trial_end: Callable[[], None] | None = None,
    objective_factory: Callable[[StudySpec, threading.Event], Callable[[optuna.Trial], float]]
    | None = None,
) -> WorkerReport:
    """Run queued trials of `study_name` until none is left (or stop is set).

    `artifacts` is the folder for epoch checkpoints (None: none are written, and a retried
    trial starts over), written at most every `checkpoint_every` seconds of a trial.
    Storage errors that outlast the storage's retries propagate.
    """
    stop = stop or threading.Event()
    started = time.perf_counter()
    spec = load_spec_from_storage(storage, study_name)
    study = optuna.load_study(
        study_name=study_name,
        storage=storage,
        sampler=build_sampler(
            spec.sampler.name,
            seed=worker_seed(spec.sampler.seed, worker_index),
            options=spec.sampler.options,
        ),
        pruner=build_pruner(
            spec.pruner.name, max_epochs=spec.train.epochs, options=spec.pruner.options
        ),
    )
    deadline = Deadline(study)
    report = WorkerReport()
    # Before loading any data: a latecomer has nothing to do.
    if deadline.passed() or _stopped_early(study):
        report.seconds = time.perf_counter() - started
        return report
    keeper = None  # the best trials' weights: kept by the training objective only
    if objective_factory is None:
        checkpoints = (
            CheckpointStore(artifacts, study_name, every_seconds=checkpoint_every)
            if artifacts
            else None
        )
        keeper = model_keeper(artifacts, spec.keep, spec.direction)
        objective = _training_objective(
            spec, device, data_dir, stop, checkpoints, keeper, cache_dir=artifacts
        )
        check_data(storage, study_name, objective.data)  # other data under the same path
        record_data(study, objective.data)
    else:
        objective = objective_factory(spec, stop)
    while not stop.is_set() and not deadline.passed():
        trial = claim_trial(study, storage, offset=worker_index)
        if trial is None:
            if not _others_running(study) or (spec.stop_after and _stopped_early(study)):
                break
            # A running trial may belong to a dead worker: fail it once stale, and its
            # re-queued copy is claimed on the next pass.
            _fail_stale_trials(study)
            stop.wait(POLL_SECONDS)
            continue
        state = run_trial(study, storage, trial, objective)
        report.states[state.name] += 1
        if on_trial_end is not None:
            on_trial_end()
        if spec.stop_after and not stop.is_set():  # an interrupted trial is re-queued
            reason = record_trial(study, storage, trial_id(trial))
            if reason:
                log.info("study %r %s: taking no new trial", study_name, reason)
                break
    if keeper is not None:  # another worker may have kept a model beside ours
        keeper.trim(study)
    report.seconds = time.perf_counter() - started
    report.stopped = stop.is_set()
    return report


def _stopped_early(study: optuna.Study) -> bool:
    """Whether the study has stopped early ([study] stop_after), with a log line if so."""
    reason = stopped_reason(study)
    if reason:
        log.info("study %r %s: taking no new trial", study.study_name, reason)
    return bool(reason)


class Deadline:
    """The study's deadline, read once and read again only when it seems to have passed.

    Wall-clock (UTC epoch) time, so that workers on every host agree while their clocks do
    (NTP). Checked before each claim, never per trial in the storage: the second read, once
    the deadline seems past, sees a deadline that a later launch moved.
    """

    def __init__(self, study: optuna.Study) -> None:
        self.study = study
        self.at = study_deadline(study)

    def passed(self) -> bool:
        """True, with a log line, once the deadline has passed (the worker then ends)."""
        if self.at is None or time.time() < self.at:
            return False
        self.at = study_deadline(self.study)
        if self.at is None or time.time() < self.at:
            return False
        log.info(
            "study %r passed its deadline (%s UTC): taking no new trial",
            self.study.study_name,
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.at)),
        )
        return True


def _training_objective(
    spec: StudySpec,
    device: torch.device | str,
    data_dir: str | None,
    stop: threading.Event,
    checkpoints: CheckpointStore | None,
    keeper: ModelKeeper | None,
    *,
    cache_dir: str | Path | None = None,
) -> Objective:
    check_same_source(spec)  # an own network: the code the study was launched with
    # Loaded once per worker and kept on the device for every trial.
    data = load_study_data(spec, data_dir, cache_dir=cache_dir)
    budget = device_data_bytes(device)
    if budget is not None and data.nbytes > budget:
        log.info(
            "data set of %.0f MB > %.0f MB of %s: kept on the host, sent batch by batch",
            data.nbytes / 2**20,
            budget / 2**20,
            device,
        )
    data = data.to(device, max_device_bytes=budget)
    return Objective(spec, data, should_stop=stop.is_set, checkpoints=checkpoints, keeper=keeper)


def load_study_data(
    spec: StudySpec, data_dir: str | None = None, *, cache_dir: str | Path | None = None
) -> Dataset:
    """The data set of a study, split as its spec says; `data_dir` overrides the spec's.

    A user's data (folder, npz, csv) is read from `[data] path` (images decoded once into
    `cache_dir`) and carries its identity, to be stored with the study.
    """
    source, arrays = read_for_spec(spec, cache_dir)
    data = load_dataset(
        spec.data.name,
        data_dir=data_dir or spec.data.dir,
        seed=spec.data.seed,
        val_fraction=spec.data.val_fraction,
        max_train=spec.data.max_train,
        max_val=spec.data.max_val,
        user=arrays,
    )
    if source is None or arrays is None:
        return data
    examples = {"train": len(data.train), "val": len(data.val), "test": len(data.test)}
    return dataclasses.replace(data, identity=identity(source, arrays, examples))


def claim_trial(
    study: optuna.Study, storage: optuna.storages.RDBStorage, *, offset: int = 0
) -> optuna.Trial | None:
    """Atomically move one queued trial to RUNNING, topping the queue up when it is empty.

    None once the whole budget has been queued and nothing is left waiting. Study.ask()
    would create a fresh trial instead, overshooting the budget; this claims only what the
    queue holds, with the same state-transition check.
    """
    for _ in range(CLAIM_ROUNDS):
        trial = _claim_queued(study, storage, offset)
        if trial is not None:
            return trial
        if top_up(study, storage) == 0:
            return None
    return None  # other workers took every queued trial each round: run_worker polls


def _claim_queued(
    study: optuna.Study, storage: optuna.storages.RDBStorage, offset: int
) -> optuna.Trial | None:
    """Claim one of the trials queued now; None if there are none or others took them all."""
    # The study's own storage wrapper (Optuna's per-process trial cache) must know the
    # Trial we hand out; `storage` is the same database underneath.
    cached = study_storage(study)
    claim_next = getattr(storage, "claim_next_waiting_trial", None)
    if claim_next is not None:  # a database: pick and claim in one transaction
        claimed = claim_next(study_id(study), {WORKER_ATTR: worker_name()})
        if claimed is None:
            return None
        queued_id, frozen = claimed
        trial = optuna.Trial(study, queued_id) if frozen is None else claimed_trial(study, frozen)
        cache_claimed_trial(cached, study_id(study), trial._cached_frozen_trial)
        return trial
    fixed, queue = _waiting_ids(study, storage)
    # Workers that all tried the oldest queued trial first would collide on every claim, so
    # each starts at its own place in the queue. A fixed (not random) place keeps a lone
    # worker's trial numbers, and so its seeds, reproducible. Known configurations (fixed
    # params) are few and run first, in order: a lost race over one costs one statement.
    start = offset % len(queue) if queue else 0
    for queued_id in fixed + queue[start:] + queue[:start]:
        try:
            if _claim(storage, cached, queued_id):
                trial = optuna.Trial(study, queued_id)
                cache_claimed_trial(cached, study_id(study), trial._cached_frozen_trial)
                return trial
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def _waiting_ids(
    study: optuna.Study, storage: optuna.storages.BaseStorage
) -> tuple[list[int], list[int]]:
    """The queued trials' ids, (with fixed params, the others) (each storage reads them its
    cheapest way)."""
    return storage.waiting_trial_ids(study_id(study))


def _claim(
    storage: optuna.storages.BaseStorage, cached: optuna.storages.BaseStorage, queued_id: int
) -> bool:
    """Move a queued trial to RUNNING with its first heartbeat and this worker's name.

    A storage with claim-by-id (hpo's database storage; `_claim_queued` prefers its
    claim-the-next) does it in one transaction. Elsewhere (the proxy) it takes three calls,
    the beat first: a worker killed between the claim and its first beat must still leave a
    trial that goes stale.
    """
    attrs = {WORKER_ATTR: worker_name()}
    claim = getattr(storage, "claim_waiting_trial", None)
    if claim is not None:
        return claim(queued_id, attrs)
    heartbeats_for(storage).before_claim(queued_id)
    if not cached.set_trial_state_values(queued_id, state=TrialState.RUNNING):
        return False
    for key, value in attrs.items():
        cached.set_trial_user_attr(queued_id, key, value)
    return True


def run_trial(
    study: optuna.Study,
    storage: optuna.storages.RDBStorage,
    trial: optuna.Trial,
    objective: Callable[[optuna.Trial], float],
) -> TrialState:
    """Run one claimed trial and tell the study how it ended; never raises for the trial.

    Only a storage that stays unreachable past its retries (StorageError) ends the worker.
    """
    with heartbeat(storage, trial_id(trial)):
        try:
            return _run_and_tell(study, trial, objective)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Our heartbeats stopped reaching the database for longer than the grace period
            # (an outage), so another worker failed this attempt and re-queued it; the retry
            # counts instead (and resumes from our checkpoint). Drop this attempt.
            log.warning("trial %d was failed as stale by another worker; dropped", trial.number)
            return TrialState.FAIL


def _run_and_tell(
    study: optuna.Study, trial: optuna.Trial, objective: Callable[[optuna.Trial], float]
) -> TrialState:
    out_of_memory = ""
    try:
        value = objective(trial)
    except optuna.TrialPruned:
        return _tell(study, trial, TrialState.PRUNED)
    except StopRequested as exc:
        _requeue_interrupted(study, trial, str(exc))
        return TrialState.FAIL
    except DivergedError as exc:
        return _fail(study, trial, f"diverged: {exc}")
    # Refused before anything was allocated, or an own network's build failed: no traceback.
    except (TrialTooLarge, ModelEntryError) as exc:
        return _fail(study, trial, str(exc))
    except torch.cuda.OutOfMemoryError as exc:
        # Freed below, outside the handler: the traceback's frames hold the trial's tensors.
        out_of_memory = str(exc).splitlines()[0] if str(exc) else "OutOfMemoryError"
    except (StorageError, optuna.exceptions.UpdateFinishedTrialError):
        raise  # not the trial's fault: the database is gone, or the attempt was superseded
    except Exception as exc:  # one broken trial must never kill the worker
        log.warning("trial %d failed:\n%s", trial.number, traceback.format_exc())
        return _fail(study, trial, f"{type(exc).__name__}: {exc}")
    if out_of_memory:
        _free_device_memory()
        return _fail(study, trial, f"CUDA out of memory: {out_of_memory}")
    return _tell(study, trial, TrialState.COMPLETE, value)


def _tell(
    study: optuna.Study,
    trial: optuna.Trial,
    state: TrialState,
    value: float | tuple[float, ...] | None = None,
) -> TrialState:
    told, values = tell(study, trial, value, state=state if value is None else None)
    shown = values[0] if values and len(values) == 1 else values
    log.info("trial %d %s %s", trial.number, told.name.lower(), shown)
    return told


def _fail(study: optuna.Study, trial: optuna.Trial, reason: str) -> TrialState:
    trial.set_user_attr("fail_reason", reason[:500])
    return _tell(study, trial, TrialState.FAIL)


def _requeue_interrupted(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    """Record the trial as interrupted and queue it again with the same params."""
    trial.set_user_attr("fail_reason", f"interrupted: {reason}")
    study.tell(trial, state=TrialState.FAIL)
    frozen = study_storage(study).get_trial(trial_id(trial))
    # The same callback that re-queues dead workers' trials: the attempt is superseded.
    optuna.storages.RetryHeartbeatStaleTrialCallback()(study, frozen)


def _others_running(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def _fail_stale_trials(study: optuna.Study) -> None:
    # The study's own storage: behind a proxy, the same object whose heartbeats remember
    # what this worker saw at its last poll.
    heartbeats_for(study_storage(study)).fail_stale(study)


def _free_device_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextlib.contextmanager
def heartbeat(storage: optuna.storages.BaseStorage, trial_id: int) -> Iterator[None]:
    """Record the trial's heartbeat every interval while the body runs (hpo.storage.heartbeats: the
    kind the storage supports)."""
    beats = heartbeats_for(storage)
    interval = beats.interval
    if interval is None:
        yield
        return
    done = threading.Event()

    def beat() -> None:
        while not done.wait(interval):
            try:
                beats.beat(trial_id)
            except Exception as exc:  # a database restart: the next beat tries again
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                log.warning("heartbeat of trial %d failed (%s); retrying", trial_id, reason)

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
