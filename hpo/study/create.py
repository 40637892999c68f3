"""Create or resume a study with its spec snapshot, and keep its study-wide trial budget.

The budget is held as a small rolling queue of WAITING trials: creating a study queues the
first QUEUE_DEPTH trials, and a worker that finds the queue empty tops it up (`top_up`),
never past the budget. Every top-up counts the budget used so far in SQL under the study
lock, and claiming a queued trial is atomic in the storage, so any number of workers on
any number of hosts finish exactly the budget, never more, never less. A trial whose worker
died is re-queued by Optuna's retry callback; the dead attempt is then "superseded" and no
longer counts, so a retry never takes budget.

Why a small queue rather than the whole budget up front: every claim (and the sampler,
and the pruner) re-reads every unfinished trial of the study, so a study of N pre-queued
trials costs O(N) per trial. A queue of QUEUE_DEPTH keeps that read bounded.

Creating the study and every top-up run under the study lock next to the database, as
LockedCalls (hpo.storage.locks): a process on a database runs them itself, one behind a
storage proxy (`hpo proxy`, grpc://) has the proxy run them; this module does not ask which.
So do `enqueue` (known configurations, hpo.study.known: queued ahead of the rest, within the
budget) and the stop rule's record of each finished trial (hpo.study.stopping).

`[study] timeout` is one deadline for the whole study, stored with it as absolute UTC epoch
seconds (DEADLINE_ATTR) when the study is created, so every worker, wherever and whenever it
starts, stops taking trials at the same moment. Relaunching the same file keeps the deadline;
a launch whose timeout differs from the stored one sets a new deadline from now.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from typing import Any

import optuna

from hpo.config.spec import StudySpec, spec_from_dict
from hpo.errors import HpoError, SpecError, StudyConflictError
from hpo.storage import _optuna
from hpo.storage.locks import LockedCall, Request
from hpo.storage.urls import mask_url
from hpo.study.known import Known, accept, checked_configs, known_of
from hpo.study.records import (
    BUDGET_ATTR,
    DEADLINE_ATTR,
    KNOWN_ATTR,
    SPEC_ATTR,
    stop_reason,
    stored_budget,
)
from hpo.study.samplers import check_options
from hpo.study.stopping import RECORD_TRIAL, check_relaunch, starting_plateau

# Most WAITING trials a top-up leaves queued. A study of at most this many trials is queued
# whole at creation, as before the queue rolled. Deep enough that eight workers rarely find
# it empty at once (a top-up every 16 trials study-wide, one lock round per top-up), small
# enough that re-reading it on every claim stays a few rows per trial.
QUEUE_DEPTH = 16


def open_study(
    storage: optuna.storages.BaseStorage,
    spec: StudySpec,
    *,
    trials: int | None = None,
    resume_stopped: bool = False,
    on_pending: Callable[[int], None] | None = None,
) -> optuna.Study:
    """Create the study or resume it; queue its known configurations, then trials up to
    the budget.

    Raises StudyConflictError, before writing anything, if a study of that name exists with
    a different spec, and HpoError if it stopped early (stop_after) unless `resume_stopped`.
    Serialized across processes, so concurrent launches make one study. `on_pending` hears
    how many known configurations wait for budget, when some do.
    """
    target = trials if trials is not None else spec.trials
    if target < 1:
        raise HpoError(f"--trials must be >= 1, got {target}")
    request = {
        "study": spec.name,
        "spec": spec.to_dict(),
        "trials": target,
        "resume_stopped": resume_stopped,
    }
    pending = int(storage.run_locked(OPEN_STUDY, request).get("pending", 0))
    if pending and on_pending is not None:
        on_pending(pending)
    return optuna.load_study(study_name=spec.name, storage=storage)


def _open_locked(storage: optuna.storages.RDBStorage, request: Request) -> Request:
    """open_study's work next to the database, under the study lock."""
    spec = spec_from_dict(request["spec"], source="spec to open")
    existing = _stored_snapshot(storage, spec.name)
    attrs: dict[str, Any] = {}
    if existing is not None:
        _check_same_experiment(existing, spec, storage)
        attrs = storage.get_study_user_attrs(storage.get_study_id_from_name(spec.name))
    # Checked before anything is written: a stopped study, a corrupt list of known ones.
    resumed = check_relaunch(spec.name, attrs, resume=bool(request.get("resume_stopped")))
    known, added = accept(known_of(spec.name, attrs), spec.enqueue)
    study = optuna.create_study(
        study_name=spec.name,
        storage=storage,
        directions=list(spec.directions),  # one per metric of a multi-objective study
        load_if_exists=True,
    )
    if existing is None:
        study.set_user_attr(SPEC_ATTR, spec.to_dict())
    else:
        _follow_relaunch(study, spec, existing)
    _set_deadline(study, spec, existing)
    names = list(spec.objectives)
    if study.metric_names != names:  # the dashboard's axis labels instead of Objective 0, 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
    target = int(request["trials"])
    stored = study.user_attrs.get(BUDGET_ATTR)
    if type(stored) is not int or stored != target:  # a corrupt one is replaced too
        study.set_user_attr(BUDGET_ATTR, target)
    study_id = _optuna.study_id(study)
    writes = {**resumed, **starting_plateau(storage, study_id, spec.to_dict(), attrs | resumed)}
    if writes:
        _optuna.write_study_user_attrs(storage, study_id, writes)
    waiting, pending = _fill_queue(storage, study_id, target, known, changed=added > 0)
    return {"waiting": waiting, "pending": pending}


# Keys outside a spec's identity that a relaunch may change: the stored spec follows them.
# (A relaunch's [[enqueue]] tables are recorded too; those new to the study are queued.)
RELAUNCH_KEYS = ("timeout", "keep", "stop_after", "min_delta", "enqueue")


def _follow_relaunch(study: optuna.Study, spec: StudySpec, snapshot: dict[str, Any]) -> None:
    """Record in the stored spec what a relaunch changed (workers read it from there)."""
    current = spec.to_dict()
    changed = {key: current[key] for key in RELAUNCH_KEYS if snapshot.get(key) != current[key]}
    if changed:
        study.set_user_attr(SPEC_ATTR, {**snapshot, **changed})


def _set_deadline(study: optuna.Study, spec: StudySpec, snapshot: dict[str, Any] | None) -> None:
    """Store the study's deadline: at creation, and when a launch changes the timeout.

    The caller holds the study lock. Relaunching with the stored timeout keeps the deadline,
    so a resumed study gets no more time by being launched again. A different timeout (not
    part of the spec's identity) is the user asking for a new deadline: it runs from now,
    and the snapshot records the timeout so that the next relaunch keeps it. A study stored
    before deadlines existed gets one from now too.
    """
    if snapshot is None:
        changed = spec.timeout is not None
    else:
        timeout_changed = snapshot.get("timeout") != spec.timeout
        missing = spec.timeout is not None and DEADLINE_ATTR not in study.user_attrs
        changed = timeout_changed or missing
    if changed:
        study.set_user_attr(DEADLINE_ATTR, time.time() + spec.timeout if spec.timeout else None)


def study_deadline(study: optuna.Study) -> float | None:
    """The study's deadline in UTC epoch seconds; None if it has none.

    Read from the storage each time, so a deadline a later launch moved is seen.
    """
    deadline = study.user_attrs.get(DEADLINE_ATTR)
    if deadline is None:
        return None
    if isinstance(deadline, bool) or not isinstance(deadline, int | float):
        raise _corrupt(study.study_name, f"its deadline is {_kind(deadline)}, not a number")
    return float(deadline)


def top_up(study: optuna.Study, storage: optuna.storages.BaseStorage) -> int:
    """Queue trials up to QUEUE_DEPTH waiting, never past the budget; how many are waiting.

    Under the study lock, so the count and the enqueues of two workers never interleave;
    a database restart meanwhile is waited out (and the count taken again).
    """
    request = {"study": study.study_name, "study_id": _optuna.study_id(study)}
    return int(storage.run_locked(TOP_UP, request)["waiting"])


def _top_up_locked(storage: optuna.storages.RDBStorage, request: Request) -> Request:
    """top_up's work next to the database, under the study lock."""
    study_id = int(request["study_id"])
    attrs = storage.get_study_user_attrs(study_id)
    target = stored_budget(request["study"], attrs)
    known = known_of(request["study"], attrs)
    return {"waiting": _fill_queue(storage, study_id, target, known, changed=False)[0]}


def _fill_queue(
    storage: optuna.storages.RDBStorage, study_id: int, target: int, known: Known, *, changed: bool
) -> tuple[int, int]:
    """Queue the pending known configurations, then trials up to QUEUE_DEPTH waiting, all
    within `target`; (how many wait after, how many known ones still wait for budget).

    The caller holds the study lock. A known configuration first takes the place of a queued
    trial that fixes nothing (hpo.study.known), so one given to a running study runs next.
    Trials are queued without Optuna's empty fixed_params attr (as add_trial does, not
    enqueue_trial): one row less to write and to read back per claim; and all in one
    transaction, with the record of the known ones (written when `changed` or any queued).
    """
    used, waiting = _optuna.queue_counts(storage, study_id)
    missing = min(QUEUE_DEPTH - waiting, target - used)

    def record(queued: int) -> dict[str, Any]:
        if not (changed or queued):  # idle workers top up every poll: write nothing new
            return {}
        return {KNOWN_ATTR: known.queued(queued).to_attr()}

    queued = _optuna.create_waiting_trials(
        storage, study_id, missing, fixed=known.pending, study_attrs=record
    )
    return waiting + max(0, missing), len(known.pending) - queued


def enqueue(storage: optuna.storages.BaseStorage, study_name: str, configs: list[Any]) -> Request:
    """Give a study known configurations to run first (`hpo enqueue`), checked against its
    space; {"added": new to the study, "waiting": how many known ones wait for budget,
    "queued": trials queued now, "stopped": why the study stopped early, or ""}.

    SpecError, before anything is written, for a configuration the space cannot yield; one
    accepted before is not added again.
    """
    return storage.run_locked(ENQUEUE, {"study": study_name, "params": configs})


def _enqueue_locked(storage: optuna.storages.RDBStorage, request: Request) -> Request:
    """enqueue's work next to the database, under the study lock."""
    name = request["study"]
    spec = load_spec_from_storage(storage, name)
    configs = checked_configs(list(request["params"]), spec.space)
    study_id = storage.get_study_id_from_name(name)
    attrs = storage.get_study_user_attrs(study_id)
    target = stored_budget(name, attrs)
    known, added = accept(known_of(name, attrs), configs)
    waiting, pending = _fill_queue(storage, study_id, target, known, changed=added > 0)
    stopped = stop_reason(attrs) or ""
    return {"added": added, "waiting": pending, "queued": waiting, "stopped": stopped}


# The study operations that run next to the database; `hpo proxy` serves these by name.
OPEN_STUDY = LockedCall("OpenStudy", _open_locked)
TOP_UP = LockedCall("TopUp", _top_up_locked)
ENQUEUE = LockedCall("Enqueue", _enqueue_locked)
LOCKED_CALLS = (OPEN_STUDY, TOP_UP, ENQUEUE, RECORD_TRIAL)


def load_spec_from_storage(storage: optuna.storages.RDBStorage, study_name: str) -> StudySpec:
    """The spec stored with a study; HpoError naming what exists if there is none."""
    snapshot = _stored_snapshot(storage, study_name)
    if snapshot is None:
        names = _optuna.study_names(storage)
        known = ", ".join(names[:10]) or "none yet"
        raise HpoError(
            f"no hpo study named {study_name!r} in {mask_url(storage.url)} "
            f"(studies there: {known}); start one with `hpo launch study FILE`"
        )
    return _spec_of(snapshot, study_name)


def _stored_snapshot(storage: optuna.storages.RDBStorage, study_name: str) -> dict[str, Any] | None:
    """The spec snapshot stored with a study; None if there is no such study or it has none.

    A study that has one which is not a spec-shaped object (edited by hand, written by
    something else) is an HpoError naming it, never a traceback or "no such study".
    """
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return None
    try:
        attrs = storage.get_study_user_attrs(study_id)
    except ValueError as exc:  # Optuna parses each stored value as JSON
        raise _corrupt(study_name, f"its stored attributes are not valid JSON: {exc}") from None
    if SPEC_ATTR not in attrs:
        return None  # not created by hpo
    snapshot = attrs[SPEC_ATTR]
    if not isinstance(snapshot, dict) or not snapshot:
        raise _corrupt(study_name, f"{_kind(snapshot)} where a table of settings belongs")
    return snapshot


def _spec_of(snapshot: dict[str, Any], study_name: str) -> StudySpec:
    """Validate a stored snapshot as a study file is validated."""
    source = f"spec stored with study {study_name!r}"
    try:
        return check_options(spec_from_dict(snapshot, source=source), source=source)
    except SpecError as exc:
        raise HpoError(f"{exc} (stored by another hpo version?)") from None
    except KeyError as exc:
        raise _corrupt(study_name, f"it has no {exc.args[0]!r} entry") from None
    except (TypeError, ValueError, AttributeError) as exc:  # not even shaped like a spec
        raise _corrupt(study_name, f"{type(exc).__name__}: {exc}") from None


def _corrupt(study_name: str, what: str) -> HpoError:
    return HpoError(
        f"study {study_name!r} has a corrupt hpo spec ({what}); launch the study file under "
        f"a new name (--name NEW_NAME), or delete this study (`optuna delete-study "
        f"--study-name {study_name!r}`)"
    )


def _kind(value: Any) -> str:
    """What a JSON value is, in words: null, a string, a list, an empty table, ..."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an empty table"
    kinds = {str: "a string", list: "a list", bool: "a boolean", int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)


def _check_same_experiment(
    snapshot: dict[str, Any], spec: StudySpec, storage: optuna.storages.RDBStorage
) -> None:
    stored = _spec_of(snapshot, spec.name)
    differing = _differing_keys(stored.identity(), spec.identity())
    if differing:
        raise StudyConflictError(
            f"study {spec.name!r} already exists in {mask_url(storage.url)} with a different "
            f"spec ({', '.join(differing)} differ); pass --name NEW_NAME to start a new "
            "study, or restore the original file to resume this one"
        )


def _differing_keys(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            keys += _differing_keys(left, right, f"{prefix}{key}.")
        elif json.dumps(left, sort_keys=True) != json.dumps(right, sort_keys=True):
            keys.append(f"{prefix}{key}")
    return keys
