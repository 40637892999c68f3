"""hpo.compare.service through the CLI: a tiny real comparison end to end, `hpo compare`,
resume, `hpo report`, bad input."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo.compare.load import GROUP_ATTR, SAMPLER_ATTR, SEED_ATTR
from hpo.compare.report import report_folder
from hpo.compare.run import study_name
from hpo.compare.runs import RUNS_FILE, read_runs
from tests.helpers import run_hpo
from tests.hpo.compare.kit import TRIALS, write_tiny

pytestmark = pytest.mark.slow

SAMPLERS = ("random", "tpe")
SEEDS = 2


@dataclass(frozen=True)
class Tiny:
    root: Path
    url: str
    file: Path
    first: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tiny]:
    root = tmp_path_factory.mktemp("compare")
    url = f"sqlite:///{root / 'hpo.db'}"
    file = write_tiny(root)
    first = run_hpo(
        "--storage",
        url,
        "compare",
        str(file),
        "--samplers",
        ",".join(SAMPLERS),
        "--seeds",
        str(SEEDS),
        "--trials",
        str(TRIALS),
        cwd=root,
    )
    yield Tiny(root, url, file, first)


def test_compare_runs_one_complete_study_per_sampler_and_seed(tiny: Tiny) -> None:
    assert tiny.first.returncode == 0, tiny.first.stderr
    names = {s.study_name: s for s in optuna.get_all_study_summaries(tiny.url)}
    expected = {study_name("tiny", s, k) for s in SAMPLERS for k in range(SEEDS)}
    assert set(names) == expected
    for sampler in SAMPLERS:
        for seed in range(SEEDS):
            summary = names[study_name("tiny", sampler, seed)]
            assert summary.user_attrs[GROUP_ATTR] == "tiny"
            assert summary.user_attrs[SAMPLER_ATTR] == sampler
            assert summary.user_attrs[SEED_ATTR] == seed
            spec = summary.user_attrs["hpo_spec"]
            assert spec["sampler"]["name"] == sampler
            assert spec["sampler"]["seed"] == seed
            assert spec["sampler"]["options"] == (
                {"n_startup_trials": 2} if sampler == "tpe" else {}
            )
            study = optuna.load_study(study_name=summary.study_name, storage=tiny.url)
            assert [t.state for t in study.trials] == [TrialState.COMPLETE] * TRIALS


def test_progress_shows_per_sampler_trials_and_best(tiny: Tiny) -> None:
    last = [line for line in tiny.first.stdout.splitlines() if "running" in line][-1]
    assert f"random {SEEDS * TRIALS}/{SEEDS * TRIALS} best 0." in last
    assert f"tpe {SEEDS * TRIALS}/{SEEDS * TRIALS} best 0." in last


def test_every_trial_records_layer_diagnostics(tiny: Tiny) -> None:
    study = optuna.load_study(study_name="tiny-random-s0", storage=tiny.url)
    for trial in study.trials:
        attrs = trial.user_attrs
        for phase in ("init", "final"):
            depth = trial.params["depth"]
            assert len(attrs[f"diag_{phase}_act_std"]) == depth
            assert len(attrs[f"diag_{phase}_dead_fraction"]) == depth
            assert len(attrs[f"diag_{phase}_grad_norm"]) == depth + 1  # + the head
            assert all(0 <= d <= 1 for d in attrs[f"diag_{phase}_dead_fraction"])


def test_report_files_and_table(tiny: Tiny) -> None:
    out = tiny.root / report_folder("tiny")  # reports/tiny-HASH
    for name in (
        "report.html",
        "plotly.min.js",
        "summary.md",
        "best_so_far.png",
        "final_bests.png",
        "importances.png",
        "diagnostics.png",
    ):
        assert (out / name).is_file(), name
        assert (out / name).stat().st_size > 1000, name
    assert (out / "best_so_far.png").read_bytes()[:4] == b"\x89PNG"
    html = (out / "report.html").read_text()
    assert '<script src="plotly.min.js"></script>' in html
    for div in (
        "fig-best-so-far",
        "fig-final-bests",
        "fig-importances",
        "fig-params",
        "fig-diagnostics",
    ):
        assert div in html
    md = (out / "summary.md").read_text()
    assert "| random | 2 | 6 |" in md
    assert "| tpe | 2 | 6 |" in md
    assert "Mann-Whitney U" in md
    assert "![best_so_far.png](best_so_far.png)" in md
    assert "Comparison tiny" in tiny.first.stdout
    assert "median final best" in tiny.first.stdout


def test_compare_again_only_fills_in_what_is_missing(tiny: Tiny) -> None:
    again = run_hpo(
        "--storage",
        tiny.url,
        "compare",
        str(tiny.file),
        "--samplers",
        "random",
        "--seeds",
        str(SEEDS + 1),
        "--trials",
        str(TRIALS),
        "--no-report",
        cwd=tiny.root,
    )
    assert again.returncode == 0, again.stderr
    # Only the new seed ran: the progress lines name no study of the first run.
    running = {
        line.rsplit("running ", 1)[1].rstrip(")")
        for line in again.stdout.splitlines()
        if "running" in line
    }
    assert running == {"tiny-random-s2"}, running
    for seed in range(SEEDS + 1):
        study = optuna.load_study(study_name=f"tiny-random-s{seed}", storage=tiny.url)
        assert len(study.trials) == TRIALS
    rebuilt = run_hpo("--storage", tiny.url, "report", "tiny", "--out", "again", cwd=tiny.root)
    assert rebuilt.returncode == 0, rebuilt.stderr
    md = (tiny.root / "again" / "summary.md").read_text()
    assert "| random | 3 | 9 |" in md
    assert "| tpe | 2 | 6 |" in md


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "FILE", "--samplers", "random,bogus"], "unknown sampler 'bogus'"),
        (["compare", "FILE", "--seeds", "0"], "--seeds must be >= 1"),
        (["compare", "FILE", "--trials", "0"], "--trials must be >= 1"),
        (["report", "nosuchgroup"], "no comparison named 'nosuchgroup'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    file = write_tiny(tmp_path)
    args = [str(file) if a == "FILE" else a for a in args]
    result = run_hpo("--storage", f"sqlite:///{tmp_path / 'hpo.db'}", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_live_compare_writes_runs_csv(tiny: Tiny) -> None:
    rows = read_runs(tiny.root / report_folder("tiny") / RUNS_FILE)
    assert len(rows) == len(SAMPLERS) * SEEDS * TRIALS
    for sampler in SAMPLERS:
        for seed in range(SEEDS):
            study = [r for r in rows if (r.arm, r.seed) == (sampler, seed)]
            assert sorted(r.trial for r in study) == list(range(TRIALS))
            assert all(r.state == "COMPLETE" for r in study)
            compute = [r.compute_seconds for r in study]
            wall = [r.wall_seconds for r in study]
            assert compute == sorted(compute) and compute[0] > 0
            assert wall == sorted(wall)  # finishing order
            assert study[-1].best_so_far == max(r.value for r in study)
