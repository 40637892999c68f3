"""The gRPC storage proxy (`hpo proxy`, grpc:// storages) and heartbeats behind it.

Fast tests serve the proxy from a thread in front of SQLite; the fault tests run real
`hpo proxy` and `hpo worker` processes in front of the real PostgreSQL (marker postgres).
Waits are bounded; nothing asserts on timing.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from hpo.config.spec import load_spec
from hpo.errors import HpoError, StorageError
from hpo.runtime.worker import claim_trial, heartbeat, run_worker
from hpo.storage.heartbeats import BEAT_ATTR, AttrHeartbeats, OptunaHeartbeats, heartbeats_for
from hpo.storage.open import open_storage
from hpo.storage.proxy_client import ProxyStorage, parse_proxy_url
from hpo.storage.stale import MAX_RETRY
from hpo.study.create import QUEUE_DEPTH, open_study
from hpo.study.records import budget_of, superseded_numbers
from hpo.training.checkpoint import CheckpointStore
from tests.helpers import (
    WAIT_SECONDS,
    HpoProcesses,
    assert_budget_accounted,
    assert_killed_trial_resumed,
    checkpointed_victim,
    connection_name,
    connections_by_application,
    free_port,
    run_hpo,
    serving_proxy,
    start_proxy,
    wait_for,
    worker_settings,
    zero_cost,
)


class Clock:
    """A watcher's monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------- URLs and one-line errors


def test_unreachable_proxy_is_one_line_and_exit_2(tmp_path: Path) -> None:
    url = f"grpc://127.0.0.1:{free_port()}"
    result = run_hpo("studies", env={"HPO_STORAGE": url}, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: cannot reach storage proxy {url}: ")
    assert "hpo proxy" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_proxy_in_front_of_a_proxy_is_refused_in_one_line(tmp_path: Path) -> None:
    result = run_hpo("proxy", env={"HPO_STORAGE": "grpc://127.0.0.1:13000"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: hpo proxy serves a database, not another proxy")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("grpc://proxy:13001", ("proxy", 13001)),
        ("grpc://10.0.0.5", ("10.0.0.5", 13000)),
        ("GRPC://h:1", ("h", 1)),
        ("grpc://[::1]:13002", ("[::1]", 13002)),  # Optuna's client joins host:port
    ],
)
def test_proxy_urls(url: str, expected: tuple[str, int]) -> None:
    assert parse_proxy_url(url) == expected


def test_a_proxy_on_ipv6_listens_and_serves(sqlite_url: str) -> None:
    """Was: `--host ::` built ':::13000', which gRPC refuses."""
    optuna.create_study(study_name="v6", storage=sqlite_url)
    with serving_proxy(sqlite_url, host="::1") as url:
        assert url.startswith("grpc://[::1]:")
        names = [s.study_name for s in optuna.get_all_study_summaries(open_storage(url))]
    assert names == ["v6"]


@pytest.mark.parametrize("url", ["grpc://", "grpc://h:1/db", "grpc://u@h:1", "grpc://h:x"])
def test_malformed_proxy_urls_are_one_line(url: str) -> None:
    with pytest.raises(StorageError, match=r"malformed proxy URL .*grpc://HOST:PORT"):
        open_storage(url)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("grpc://user:s3cret@host:1", "'grpc://user:***@host:1'"),
        ("grpc://user:s3cret@host:x", "'grpc://***@host:x'"),  # unparseable: user hidden too
        ("grpc://u:s3@cr@et@host:1", "'grpc://***@host:1'"),  # an '@' in the password
    ],
)
def test_a_malformed_proxy_url_hides_its_password(url: str, shown: str) -> None:
    with pytest.raises(StorageError) as error:
        parse_proxy_url(url)
    assert f"malformed proxy URL {shown};" in str(error.value)
    assert "s3" not in str(error.value) and "cret" not in str(error.value)


# ---------------------------------------------------------------- through a proxy on SQLite


def test_proxy_storage_gets_attr_heartbeats_and_rdb_keeps_optunas(sqlite_url: str) -> None:
    with serving_proxy(sqlite_url) as url:
        proxy = open_storage(url, heartbeat_interval=3)
        assert isinstance(proxy, ProxyStorage)
        beats = heartbeats_for(proxy)
        assert isinstance(beats, AttrHeartbeats) and beats.interval == 3
        assert heartbeats_for(proxy) is beats  # one per storage: it remembers what it saw
    assert isinstance(heartbeats_for(open_storage(sqlite_url)), OptunaHeartbeats)


def test_two_workers_through_a_proxy_finish_exactly_the_budget(
    sqlite_url: str, write_study
) -> None:
    budget = QUEUE_DEPTH * 2 + 3  # two top-ups through the proxy, and a partial one
    with serving_proxy(sqlite_url) as url:
        storage = open_storage(url, heartbeat_interval=1)
        study = open_study(storage, load_spec(write_study("viaproxy", trials=budget)))
        assert budget_of(study).unqueued == budget - QUEUE_DEPTH
        reports = []
        threads = [
            threading.Thread(
                target=lambda i=i: reports.append(
                    run_worker(storage, "viaproxy", worker_index=i, objective_factory=zero_cost())
                )
            )
            for i in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT_SECONDS)
        assert sum(r.trials for r in reports) == budget
        assert_budget_accounted(study, budget)
        assert sorted(t.number for t in study.get_trials()) == list(range(budget))


def test_a_changed_spec_through_a_proxy_is_refused_in_one_line(
    sqlite_url: str, write_study
) -> None:
    with serving_proxy(sqlite_url) as url:
        storage = open_storage(url)
        open_study(storage, load_spec(write_study("same", epochs=2)))
        with pytest.raises(HpoError, match=r"already exists .* with a different spec"):
            open_study(storage, load_spec(write_study("same", epochs=3)))


def test_beats_are_written_as_a_changing_trial_attr(sqlite_url: str, create_study) -> None:
    with serving_proxy(sqlite_url) as url:
        storage = open_storage(url, heartbeat_interval=1)
        study = create_study(storage, "beats", trials=1)
        trial = claim_trial(study, storage)
        assert trial is not None
        beats = heartbeats_for(storage)
        beats.beat(trial._trial_id)
        first = storage.get_trial(trial._trial_id).system_attrs[BEAT_ATTR]
        beats.beat(trial._trial_id)
        second = storage.get_trial(trial._trial_id).system_attrs[BEAT_ATTR]
        assert first != second and first["by"] == second["by"] and second["every"] == 1


def test_silence_is_judged_on_the_watchers_clock(sqlite_url: str, create_study) -> None:
    """A trial whose beat value stays the same for the grace period is stale; one whose
    value changes is not, however far apart the owner's and watcher's clocks are."""
    with serving_proxy(sqlite_url) as url:
        storage = open_storage(url, heartbeat_interval=1)
        study = create_study(storage, "skew", trials=2)
        alive, dead = claim_trial(study, storage), claim_trial(study, storage)
        assert alive is not None and dead is not None
        clock = Clock()
        owner = heartbeats_for(storage)  # the owner beats through the same storage
        watcher = AttrHeartbeats(storage, 1, clock=clock)

        def running() -> list[optuna.trial.FrozenTrial]:
            return study.get_trials(states=(TrialState.RUNNING,))

        assert watcher.stale(running()) == []  # first sight: timed from now
        for _ in range(3):
            clock.now += 1.5
            owner.beat(alive._trial_id)
            stale = watcher.stale(running())
        assert stale == [dead._trial_id]  # no beat at all for 4.5 s of the watcher's clock
        owner.beat(dead._trial_id)  # it speaks again: timed afresh
        assert watcher.stale(running()) == []


def test_a_slower_owners_declared_interval_lengthens_the_grace(
    sqlite_url: str, create_study
) -> None:
    with serving_proxy(sqlite_url) as url:
        storage = open_storage(url, heartbeat_interval=5)
        study = create_study(storage, "slow", trials=1)
        trial = claim_trial(study, storage)
        assert trial is not None
        heartbeats_for(storage).beat(trial._trial_id)  # declares every=5
        clock = Clock()
        watcher = AttrHeartbeats(storage, 1, clock=clock)
        watcher.stale(study.get_trials(states=(TrialState.RUNNING,)))
        clock.now = 9.0
        assert watcher.stale(study.get_trials(states=(TrialState.RUNNING,))) == []
        clock.now = 10.5
        assert watcher.stale(study.get_trials(states=(TrialState.RUNNING,))) == [trial._trial_id]


def test_a_silent_trial_behind_a_proxy_is_failed_retried_and_counted_once(
    sqlite_url: str, create_study
) -> None:
    """A worker claims a trial and dies (no beat, ever): the next idle worker fails it and
    re-queues it; the budget counts the retry, not the dead attempt."""
    with serving_proxy(sqlite_url) as url:
        storage = open_storage(url, heartbeat_interval=1)
        study = create_study(storage, "silent", trials=2)
        dead = claim_trial(study, storage)
        assert dead is not None
        dead.suggest_float("x", 0.0, 1.0)

        report = run_worker(storage, "silent", objective_factory=zero_cost())

        assert report.trials == 2  # the other queued trial, then the retry
        trials = assert_budget_accounted(study, 2)
        assert trials[dead.number].state == TrialState.FAIL
        assert superseded_numbers(trials) == {dead.number}
        retry = next(t for t in trials if t.system_attrs.get("failed_trial") == dead.number)
        assert retry.params == trials[dead.number].params


def test_a_trial_whose_workers_keep_dying_behind_a_proxy_stays_failed(
    sqlite_url: str, create_study
) -> None:
    with serving_proxy(sqlite_url) as url:
        storage = open_storage(url, heartbeat_interval=1)
        study = create_study(storage, "dies", trials=1)
        clock = Clock()
        watcher = AttrHeartbeats(storage, 1, clock=clock, on_stale=storage.stale_trial_callback)
        for _ in range(MAX_RETRY + 1):
            trial = claim_trial(study, storage)  # its worker "dies" at once
            assert trial is not None
            trial.suggest_float("x", 0.0, 1.0)
            watcher.fail_stale(study)  # first sight
            clock.now += 10
            watcher.fail_stale(study)
        assert claim_trial(study, storage) is None  # nothing queued again
        trials = study.get_trials()
        assert len(trials) == MAX_RETRY + 2  # four dead attempts and the record that says why
        assert trials[-1].state == TrialState.FAIL
        assert trials[-1].user_attrs["fail_reason"].endswith("not retried again")
        assert budget_of(study).done


def test_a_finished_trials_beat_is_a_logged_warning_not_an_error(
    sqlite_url: str, create_study, caplog: pytest.LogCaptureFixture
) -> None:
    with serving_proxy(sqlite_url) as url:
        storage = open_storage(url, heartbeat_interval=1)
        study = create_study(storage, "late", trials=1)
        trial = claim_trial(study, storage)
        assert trial is not None
        study.tell(trial, 1.0)
        with (
            caplog.at_level(logging.WARNING, logger="hpo.runtime.worker"),
            heartbeat(storage, trial._trial_id),
        ):
            wait_for(lambda: caplog.records, "a logged heartbeat failure")
    assert f"heartbeat of trial {trial._trial_id} failed" in caplog.records[0].getMessage()


def test_the_proxy_process_prints_its_url_and_stops_on_sigterm(sqlite_url: str) -> None:
    with HpoProcesses() as processes:
        process, url = start_proxy(processes, sqlite_url)
        assert url.startswith("grpc://127.0.0.1:")
        assert open_storage(url).get_all_studies() == []
        process.send_signal(signal.SIGTERM)
        [result] = processes.finish(WAIT_SECONDS)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- PostgreSQL behind the proxy


@pytest.mark.postgres
def test_a_study_launched_through_the_proxy_ends_with_its_budget(
    postgres_url: str, write_study, tmp_path: Path
) -> None:
    budget = QUEUE_DEPTH + 4  # a top-up through the proxy
    path = write_study("launched", trials=budget, epochs=1)
    with HpoProcesses() as processes:
        _, url = start_proxy(processes, postgres_url)
        launch = processes.start(
            "launch", "study", str(path), "--workers", "2", env=worker_settings(url, tmp_path)
        )
        _, err = launch.communicate(timeout=WAIT_SECONDS * 2)
        assert launch.returncode == 0, err[-2000:]
    study = optuna.load_study(study_name="launched", storage=open_storage(postgres_url))
    assert_budget_accounted(study, budget)


@pytest.mark.postgres
def test_sigkilled_worker_behind_the_proxy_is_retried_and_resumes(
    postgres_url: str, pg_admin: sqlalchemy.Engine, create_study, tmp_path: Path
) -> None:
    """Two `hpo worker` processes behind one proxy; one is killed mid-trial. The study still
    ends with exactly its budget, the killed attempt failed and its retry resumed from its
    checkpoint. The workers never connect to PostgreSQL themselves."""
    budget = 3
    study = create_study(postgres_url, "kill", trials=budget, epochs=40)
    store = CheckpointStore(tmp_path, "kill")
    database = make_url(postgres_url).database

    with HpoProcesses() as processes:
        proxy, url = start_proxy(processes, postgres_url)
        env = worker_settings(url, tmp_path)
        workers = [processes.start("worker", "--study", "kill", "--gpus", "none", env=env)]
        workers.append(processes.start("worker", "--study", "kill", "--gpus", "none", env=env))
        pid, killed_number, epoch = wait_for(
            lambda: checkpointed_victim(study, store), "a trial with a checkpoint"
        )
        connections = connections_by_application(pg_admin, database)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: all(w.poll() is not None for w in workers), "the workers to end")
        proxy.send_signal(signal.SIGTERM)
        results = processes.finish(WAIT_SECONDS)

    assert not {connection_name(w.pid) for w in workers} & set(connections), connections
    assert 0 < connections.get(connection_name(proxy.pid), 0) <= 9  # --threads 8, plus one
    killed = next(w for w in workers if w.pid == pid)
    assert killed.returncode == -signal.SIGKILL
    assert results[0].returncode == 0, results[0].stderr  # the proxy, stopped by SIGTERM
    assert [w.returncode for w in workers if w is not killed] == [0]

    trials = assert_budget_accounted(study, budget)
    assert_killed_trial_resumed(trials, killed_number, epoch, store)
