"""hpo claims through the CLI: a quick real run on a temporary SQLite file, read back,
the report files and dashboard notes, resume, rebuild, bad input."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import optuna_dashboard
import pytest
from optuna.storages import RDBStorage

from hpo.claims.experiments import claims, study_name
from hpo.claims.load import CLAIM_ATTR, GRID_ATTR, POINTS_ATTR, RUN_ATTR, SIZE_ATTR
from hpo.claims.run import BOUNDARY_SIZE
from hpo.storage._optuna import study_id
from tests.helpers import assert_usage_error, run_hpo

pytestmark = pytest.mark.slow

QUICK = claims("quick")


@dataclass(frozen=True)
class Quick:
    root: Path
    url: str
    first: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quick]:
    root = tmp_path_factory.mktemp("claims")
    url = f"sqlite:///{root / 'hpo.db'}"
    first = run_hpo("--storage", url, "claims", "--size", "quick", "--seeds", "1", cwd=root)
    yield Quick(root, url, first)


def test_one_study_per_claim_one_trial_per_run(quick: Quick) -> None:
    assert quick.first.returncode == 0, quick.first.stderr
    for c in QUICK:
        study = optuna.load_study(study_name=study_name(c.name, "quick"), storage=quick.url)
        assert study.user_attrs[CLAIM_ATTR] == c.name
        assert study.user_attrs[SIZE_ATTR] == "quick"
        keys = sorted(t.user_attrs[RUN_ATTR] for t in study.trials)
        assert keys == sorted(r.key for r in c.runs(1))
        for t in study.trials:
            assert t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
            assert len(t.user_attrs["val_accuracy"]) == len(t.intermediate_values) or (
                t.state == optuna.trial.TrialState.FAIL
            )


def test_the_rings_runs_store_their_decision_boundary_and_the_data(quick: Quick) -> None:
    name = study_name("rings-batchnorm", "quick")
    study = optuna.load_study(study_name=name, storage=quick.url)
    assert len(study.user_attrs[POINTS_ATTR]) > 100
    for t in study.trials:
        grid = t.user_attrs[GRID_ATTR]
        assert len(grid) == BOUNDARY_SIZE and all(len(row) == BOUNDARY_SIZE for row in grid)
        assert all(0 <= p <= 100 for row in grid for p in row)
        assert len(t.user_attrs["diag_init_grad_norm"]) == 4  # 3 hidden layers + the head


def test_report_files_and_verdicts(quick: Quick) -> None:
    out = quick.root / "reports" / "claims-quick"
    for name in ("report.html", "plotly.min.js", "summary.md", *(f"{c.name}.png" for c in QUICK)):
        assert (out / name).is_file(), name
    md = (out / "summary.md").read_text()
    assert "# The lectures' claims, reproduced" in md
    for c in QUICK:
        assert f"## {c.title}" in md
        assert f"![{c.name}]({c.name}.png)" in md
    assert md.count("**Verdict: ") == len(QUICK)
    html = (out / "report.html").read_text()
    assert "fig-rings-batchnorm-boundary" in html
    stdout = quick.first.stdout
    assert "claims (quick)" in stdout
    assert "The rings network with and without BatchNorm: " in stdout
    assert "because" in stdout


def test_every_claim_study_has_its_note_figures_and_the_lead_the_files(quick: Quick) -> None:
    storage = RDBStorage(quick.url)
    for c in QUICK:
        study = optuna.load_study(study_name=study_name(c.name, "quick"), storage=storage)
        note = optuna_dashboard.get_note(study)
        assert f"## {c.title}" in note and "**Verdict: " in note
        attrs = storage.get_study_system_attrs(study_id(study))
        assert any(k.startswith(f"dashboard:plot_data:hpo-claims-{c.name}") for k in attrs)
    lead = optuna.load_study(study_name=study_name(QUICK[0].name, "quick"), storage=storage)
    files = [
        json.loads(v)
        for k, v in storage.get_study_system_attrs(study_id(lead)).items()
        if k.startswith("artifacts:")
    ]
    assert {"report.html", "summary.md"} <= {f["filename"] for f in files if f}


def test_again_trains_nothing_and_report_only_rebuilds(quick: Quick) -> None:
    again = run_hpo(
        "--storage",
        quick.url,
        "claims",
        "--size",
        "quick",
        "--seeds",
        "1",
        "--no-report",
        cwd=quick.root,
    )
    assert again.returncode == 0, again.stderr
    assert "seed=0: " not in again.stdout  # no progress line: every run was there
    rebuilt = run_hpo(
        "--storage",
        quick.url,
        "claims",
        "--size",
        "quick",
        "--report-only",
        "--out",
        "again",
        "--no-dashboard",
        cwd=quick.root,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "seed=0: " not in rebuilt.stdout
    assert (quick.root / "again" / "summary.md").read_text().count("**Verdict: ") == len(QUICK)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["claims", "--seeds", "0"], "--seeds must be >= 1, got 0"),
        (["claims", "--size", "huge"], "--size"),
        (["claims", "--report-only", "--no-report"], "give --report-only or --no-report"),
        (["claims", "--report-only"], "no claims studies of size full"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_hpo("--storage", f"sqlite:///{tmp_path / 'hpo.db'}", *args, cwd=tmp_path)
    assert_usage_error(result, message)
