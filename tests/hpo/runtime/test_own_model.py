"""An own network end to end: real training through `hpo launch` on SQLite and PostgreSQL,
refusals before anything is stored, a failing build that fails only its trial, a worker with
other code refused, and a killed trial of an own network resumed from its checkpoint."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

import hpo
from hpo.study.records import SPEC_ATTR
from hpo.training.checkpoint import CheckpointStore
from tests.helpers import (
    HpoProcesses,
    assert_budget_accounted,
    assert_killed_trial_resumed,
    checkpointed_victim,
    run_main,
    study_text,
    wait_for,
    with_enqueue,
    worker_settings,
)

# An own MLP on the digits' (1, 8, 8) images, using the public helpers of models/.
NETS = """
import time

from torch import nn

from models import create_act, create_dropout, create_init, create_norm


class Slow(nn.Module):
    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def forward(self, x):
        time.sleep(self.seconds)
        return x


def build(input_shape, num_classes, *, hidden=16, activation="relu", init="default",
          batchnorm=False, dropout=0.0, sleep=0.0):
    if hidden == 13:
        raise ValueError("13 is unlucky")
    features = input_shape[0] * input_shape[1] * input_shape[2]
    net = nn.Sequential(
        nn.Flatten(),
        nn.Linear(features, hidden),
        create_norm(hidden, batchnorm=batchnorm, spatial=False),
        create_act(activation),
        create_dropout(dropout),
        Slow(sleep),
        nn.Linear(hidden, num_classes),
    )
    return create_init(init, activation)(net)
"""
SPACE = """hidden = { choices = [8, 16] }
activation = { choices = ["relu", "tanh"] }
init = "he_normal"
batchnorm = true
lr = 0.05
batch_size = 64"""


def _study(folder: Path, name: str, space: str = SPACE, **keywords: object) -> Path:
    """A study file of the own network in `folder`, with its module mynets_e2e.py beside it."""
    (folder / "mynets_e2e.py").write_text(NETS, encoding="utf-8")
    data = 'name = "digits"\nmax_train = 200\nmax_val = 100'
    text = study_text(name, space, data=data, **keywords)  # type: ignore[arg-type]
    path = folder / f"{name}.toml"
    path.write_text(text.replace('name = "mlp"', 'entry = "mynets_e2e:build"'), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "storage", ["sqlite_url", pytest.param("postgres_url", marks=pytest.mark.postgres)]
)
def test_an_own_network_trains_is_stored_and_exports(
    storage: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue(storage)
    file = _study(tmp_path, "own", trials=2)
    artifacts = tmp_path / "artifacts"
    code, _, err = run_main(
        "--storage", url, "--artifacts", str(artifacts), "launch", "study", str(file)
    )
    assert code == 0, err
    study = optuna.load_study(study_name="own", storage=url)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    for trial in trials:  # build got its keys: 64 inputs -> hidden (+ BatchNorm) -> 10
        hidden = trial.params["hidden"]
        assert trial.user_attrs["n_params"] == (64 + 1) * hidden + 2 * hidden + (hidden + 1) * 10
        assert len(trial.user_attrs["diag_final_grad_norm"]) == 2  # its two Linear layers
    stored = study.user_attrs[SPEC_ATTR]
    assert (stored["model"], stored["entry"], stored["entry_dir"]) == (
        "own",
        "mynets_e2e:build",
        str(tmp_path),
    )
    assert len(stored["entry_sha256"]) == 64

    out = tmp_path / "export"
    code, _, err = run_main(
        "--storage", url, "--artifacts", str(artifacts), "export", "own", "--out", str(out)
    )
    assert code == 0, err
    model = hpo.load_model(out)
    assert model(torch.zeros(3, 1, 8, 8, dtype=torch.uint8)).shape == (3, 10)
    again = tmp_path / "retrained"  # hpo retrain builds the own network again, from storage
    code, _, err = run_main("--storage", url, "retrain", "own", "--out", str(again))
    assert code == 0, err
    assert hpo.load_model(again)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("build(", "bild("), r"has no function 'build'"),
        (
            ("import time", "import time_nowhere"),
            r"importing .*mynets_e2e\.py raised ModuleNotFoundError",
        ),
        (
            ("if hidden == 13:", "if True:"),
            r"build\(\(1, 8, 8\), 10, hidden=8, .*\) raised ValueError: 13 is unlucky",
        ),
        (
            ("    return create_init", "    return 5\n    return create_init"),
            r"build returned int, not a torch\.nn\.Module",
        ),
        (
            ("nn.Linear(hidden, num_classes)", "nn.Linear(hidden, 3)"),
            r"answers a batch of \(2, 1, 8, 8\) with \(2, 3\)",
        ),
        (
            ("sleep=0.0)", "sleep=0.0, blocks)"),
            r"build needs 'blocks', which \[space\] does not set",
        ),
        (
            ("hidden=16,", "width=16,"),
            r"build takes no keyword 'hidden' \(from \[space\]\); it accepts: width, activation",
        ),
    ],
)
def test_an_own_network_that_cannot_be_built_is_one_line_and_stores_nothing(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    file = _study(tmp_path, "broken")
    module = tmp_path / "mynets_e2e.py"
    module.write_text(NETS.replace(*change), encoding="utf-8")
    db = tmp_path / "hpo.db"
    code, out, err = run_main("--storage", f"sqlite:///{db}", "launch", "study", str(file))
    assert (code, out) == (2, ""), err
    assert err.startswith("error: [model] entry 'mynets_e2e:build': "), err
    assert len(err.splitlines()) == 1, err
    assert re.search(message, err), err
    assert not db.exists()


def test_a_build_that_fails_at_trial_time_fails_that_trial_only(tmp_path: Path) -> None:
    space = SPACE.replace("choices = [8, 16]", "choices = [8, 13]")
    file = with_enqueue(_study(tmp_path, "unlucky", space, trials=2), {"hidden": 13}, {"hidden": 8})
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    code, _, err = run_main("--storage", url, "launch", "study", str(file))
    assert code == 0, err
    failed, done = optuna.load_study(study_name="unlucky", storage=url).get_trials()
    assert failed.state == TrialState.FAIL and done.state == TrialState.COMPLETE
    reason = failed.user_attrs["fail_reason"]
    assert reason.startswith("[model] entry 'mynets_e2e:build': build((1, 8, 8), 10, hidden=13, ")
    assert reason.endswith(" raised ValueError: 13 is unlucky"), reason


def test_a_worker_whose_module_differs_refuses_to_join(tmp_path: Path) -> None:
    file = _study(tmp_path, "shared")
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    code, _, err = run_main("--storage", url, "launch", "study", str(file), "--workers", "0")
    assert code == 0, err
    module = tmp_path / "mynets_e2e.py"
    module.write_text(NETS.replace("hidden=16", "hidden=32"), encoding="utf-8")
    code, out, err = run_main("--storage", url, "worker", "--study", "shared")
    assert (code, out) == (2, ""), err
    assert len(err.splitlines()) == 1, err
    assert f"the module here ({module}, sha256 " in err
    assert "differs from the one study 'shared' was launched with" in err
    trials = optuna.load_study(study_name="shared", storage=url).get_trials()
    assert {t.state for t in trials} == {TrialState.WAITING}  # nothing ran

    module.write_text(NETS, encoding="utf-8")  # the launched code again: it joins
    code, _, err = run_main("--storage", url, "worker", "--study", "shared")
    assert code == 0, err


def test_a_killed_trial_of_an_own_network_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    # Each step sleeps 5 ms: an epoch (4 steps, diagnostics, evaluation) takes long enough to
    # kill the worker between checkpoints, and the whole trial stays a few seconds.
    space = SPACE.replace("hidden = { choices = [8, 16] }", "hidden = 8\nsleep = 0.005")
    space = space.replace("batch_size = 64", "batch_size = 16")
    file = _study(tmp_path, "resume", space, trials=1, epochs=12)
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    code, _, err = run_main("--storage", url, "launch", "study", str(file), "--workers", "0")
    assert code == 0, err
    study = optuna.load_study(study_name="resume", storage=url)
    store = CheckpointStore(tmp_path / "artifacts", "resume")
    env = worker_settings(url, tmp_path / "artifacts")
    with HpoProcesses() as processes:
        processes.start("worker", "--study", "resume", "--gpus", "none", env=env)
        pid, killed_number, epoch = wait_for(
            lambda: checkpointed_victim(study, store), "a trial with a checkpoint"
        )
        os.kill(pid, signal.SIGKILL)
        [killed] = processes.finish()
    assert killed.returncode == -signal.SIGKILL
    # Another worker (in this process: torch is loaded already) fails the silent trial once
    # its heartbeat is stale, and its retry resumes from the checkpoint.
    code, _, err = run_main("worker", "--study", "resume", "--gpus", "none", env=env)
    assert code == 0, err
    trials = assert_budget_accounted(study, 1)
    assert_killed_trial_resumed(trials, killed_number, epoch, store)
