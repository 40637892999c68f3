"""Slurm latencies of `hpo worker` arrays, on a real single-node Slurm and PostgreSQL:

- submit -> first epoch: from `sbatch` (hpo.runtime.slurm.launch_array) to the first
  intermediate value of the first trial in the storage (also: to the task RUNNING in
  squeue, and to that trial's datetime_start, i.e. a worker claimed it);
- USR2 -> running again: from the time-limit warning (`scancel --signal=USR2 --batch`) to
  the retry of the interrupted trial RUNNING in the requeued task, and to its first epoch
  after the resume.

The storage is polled every 0.1 s, so each number is late by up to that much. Uses the
Slurm that SLURM_CONF names, else starts one (tests/hpo/runtime/kit.py, needs root).

    python3 benchmarks/slurm_latency.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from _machine import ROOT, banner, figure, fresh_postgres, median

if TYPE_CHECKING:  # annotations only
    import optuna

T = TypeVar("T")

POLL_SECONDS = 0.1
BOUND_SECONDS = 300.0  # each wait: a broken run stops the benchmark, never hangs it
STUDY = """
[study]
name = "latency"
trials = 2
[model]
name = "mlp"
[data]
name = "rings"
max_train = 3000
[train]
epochs = 30
[sampler]
name = "random"
seed = 0
[pruner]
name = "none"
[space]
width = { low = 8, high = 16 }
lr = { low = 1e-3, high = 1e-1, log = true }
batch_size = 64
"""


def wait(condition: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + BOUND_SECONDS
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(POLL_SECONDS)
    raise SystemExit(f"timed out after {BOUND_SECONDS:.0f} s waiting for {what}")


def one_run(cluster_env: dict[str, str], url: str, folder: Path) -> dict[str, float]:
    """One array of one task: the four latencies of the module docstring, in seconds."""
    import optuna
    from optuna.trial import TrialState

    from hpo.runtime import slurm

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    env = {k: v for k, v in cluster_env.items() if not k.startswith("HPO_")}
    env |= {
        "HPO_STORAGE": url,
        "HPO_ARTIFACTS": str(folder / "artifacts"),
        "HPO_CHECKPOINT_EVERY": "0",
        "HPO_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }
    (folder / "study.toml").write_text(STUDY)
    create = [sys.executable, "-m", "hpo", "launch", "study", str(folder / "study.toml")]
    subprocess.run([*create, "--workers", "0"], cwd=ROOT, env=env, check=True, capture_output=True)
    study = optuna.load_study(study_name="latency", storage=url)

    started = time.time()
    array = slurm.launch_array(
        "latency",
        slurm.SlurmOptions(workers=1),
        url,
        log_dir=folder / "logs",
        script_dir=folder,
        env=env,
        command=(sys.executable, "-m", "hpo"),
    )
    try:
        wait(lambda: slurm.array_states(array.job_id, env=env).get(0) == "RUNNING", "the task")
        running = time.time()
        first = wait(lambda: _with_epochs(study, 1), "the first epoch")
        reported = time.time()
        assert first.datetime_start is not None
        claimed = first.datetime_start.timestamp()

        victim = wait(lambda: _with_epochs(study, 2), "a trial past its second epoch")
        signalled = time.time()
        task = f"{array.job_id}_0"
        subprocess.run(["scancel", "--signal=USR2", "--batch", task], env=env, check=True)

        def retry() -> optuna.trial.FrozenTrial | None:
            """The interrupted trial's retry, once a worker has claimed it."""
            for trial in study.get_trials(states=(TrialState.RUNNING, TrialState.COMPLETE)):
                if victim.number in trial.system_attrs.get("retry_history", []):
                    return trial
            return None

        def resumed_epoch() -> bool:
            """The retry reported an epoch past its checkpoint (earlier ones are replayed)."""
            trial = retry()
            resumed = None if trial is None else trial.user_attrs.get("resumed_from_epoch")
            return resumed is not None and max(trial.intermediate_values) > resumed

        again = wait(retry, "the retry to run")
        assert again.datetime_start is not None
        wait(resumed_epoch, "the retry's next epoch")
        epoch_again = time.time()
        return {
            "submit -> task RUNNING": running - started,
            "submit -> trial claimed": claimed - started,
            "submit -> first epoch": reported - started,
            "USR2 -> retry RUNNING": again.datetime_start.timestamp() - signalled,
            "USR2 -> retry's next epoch": epoch_again - signalled,
        }
    finally:
        slurm.cancel(array.job_id, env=env)
        # The next run starts on an idle node.
        wait(lambda: slurm.array_finished(slurm.array_states(array.job_id, env=env), 1), "cancel")


def _with_epochs(study: optuna.Study, count: int) -> optuna.trial.FrozenTrial | None:
    """A RUNNING or finished trial with at least `count` epochs reported, if any."""
    from optuna.trial import TrialState

    trials = study.get_trials(states=(TrialState.RUNNING, TrialState.COMPLETE))
    return next((t for t in trials if len(t.intermediate_values) >= count), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    from tests.hpo.runtime import kit

    print(banner("Slurm latency: submission and requeue of hpo worker arrays"))
    with tempfile.TemporaryDirectory(prefix="hpo-slurm-bench-") as tmp:
        if kit.found_cluster() is None and kit.unavailable_reason() is not None:
            raise SystemExit(f"no Slurm: {kit.unavailable_reason()}")
        with kit.slurm_cluster(Path(tmp) / "slurm") as cluster:
            version = subprocess.run(
                ["sinfo", "--version"], env=cluster.env, capture_output=True, text=True
            ).stdout.strip()
            print(f"{version}, SLURM_CONF {cluster.env['SLURM_CONF']}")
            results: list[dict[str, float]] = []
            for run in range(runs):
                with fresh_postgres() as url:
                    if url is None:
                        return
                    folder = Path(tmp) / f"run{run}"
                    folder.mkdir()
                    results.append(one_run(cluster.env, url, folder))
                    print(
                        f"run {run + 1}: "
                        + ", ".join(f"{k} {v:.1f} s" for k, v in results[-1].items())
                    )
    print("median over runs:")
    for key in results[0]:
        values = [r[key] for r in results]
        print(
            f"  {key:<28} {median(values):6.1f} s  (min {min(values):.1f}, max {max(values):.1f})"
        )
        figure(f"slurm: {key}", values, "s")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
