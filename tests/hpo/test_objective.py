"""The objective bridge inside a real worker: a diverging or broken trial never kills it."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from hpo.spec import load_spec
from hpo.storage import open_storage
from hpo.study import open_study
from hpo.worker import run_worker

# A learning rate of 1e12 on a deep ReLU net drives the loss to
# inf/NaN within the first epoch, whatever the draw: a real divergence, not a simulated one.
DIVERGING = """
[space]
depth = 4
width = 64
activation = "relu"
init = "default"
optimizer = "adam"
lr = { choices = [1e12, 0.01] }
"""


def test_diverging_trials_fail_with_their_reason_and_the_worker_goes_on(
    sqlite_url, write_study
) -> None:
    path = write_study("diverge", trials=6, epochs=3)
    text = path.read_text()
    path.write_text(text[: text.index("[space]")] + DIVERGING)
    storage = open_storage(sqlite_url)
    open_study(storage, load_spec(path))

    report = run_worker(storage, "diverge", artifacts=None)

    trials = optuna.load_study(study_name="diverge", storage=storage).get_trials()
    assert report.trials == 6 and len(trials) == 6
    diverged = [t for t in trials if t.params["lr"] == 1e12]
    healthy = [t for t in trials if t.params["lr"] == 0.01]
    assert diverged and healthy, "the seeded draw should try both learning rates"
    for trial in diverged:
        assert trial.state == TrialState.FAIL
        assert trial.user_attrs["fail_reason"].startswith("diverged: training loss became")
    for trial in healthy:
        assert trial.state == TrialState.COMPLETE
        assert trial.value is not None and trial.value > 0.5
