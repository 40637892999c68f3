"""Arms (sampler + pruner) end to end through the CLI: `hpo compare --arms` on SQLite,
the studies it makes, and compute to target in the report files."""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pytest

from hpo.compare.load import ARM_ATTR, GROUP_ATTR, PRUNER_ATTR, SAMPLER_ATTR, SEED_ATTR
from hpo.compare.report import report_folder
from tests.conftest import write_tiny_study
from tests.helpers import run_hpo

pytestmark = pytest.mark.slow

ARMS = ("random", "random+hyperband")
SEEDS = 2
TRIALS = 3
GROUP = "arms"


@dataclass(frozen=True)
class Ran:
    root: Path
    url: str
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    root = tmp_path_factory.mktemp("arms")
    url = f"sqlite:///{root / 'hpo.db'}"
    file = write_tiny_study(root, GROUP, trials=TRIALS, epochs=2, pruner="none")
    result = run_hpo(
        "--storage",
        url,
        "compare",
        str(file),
        "--arms",
        ",".join(ARMS),
        "--seeds",
        str(SEEDS),
        cwd=root,
    )
    return Ran(root, url, result)


def test_one_study_per_arm_and_seed_named_and_tagged(ran: Ran) -> None:
    assert ran.result.returncode == 0, ran.result.stderr
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(ran.url)}
    assert set(summaries) == {f"{GROUP}-{a}-s{k}" for a in ARMS for k in range(SEEDS)}
    for arm, pruner in zip(ARMS, ("none", "hyperband"), strict=True):
        for seed in range(SEEDS):
            attrs = summaries[f"{GROUP}-{arm}-s{seed}"].user_attrs
            assert attrs[GROUP_ATTR] == GROUP
            assert (attrs[ARM_ATTR], attrs[SAMPLER_ATTR], attrs[PRUNER_ATTR]) == (
                arm,
                "random",
                pruner,
            )
            assert attrs[SEED_ATTR] == seed
            assert attrs["hpo_spec"]["pruner"]["name"] == pruner  # what workers rebuild
            assert attrs["hpo_spec"]["sampler"] == {"name": "random", "seed": seed, "options": {}}


def test_the_pruner_arm_ran_with_hyperband(ran: Ran) -> None:
    # Hyperband's successive halving records each rung a trial reached in its system
    # attrs; no other pruner (and no pruning) writes them.
    def rungs(name: str) -> list[bool]:
        study = optuna.load_study(study_name=name, storage=ran.url)
        assert len(study.trials) == TRIALS
        return [any(k.startswith("completed_rung_") for k in t.system_attrs) for t in study.trials]

    for seed in range(SEEDS):
        assert all(rungs(f"{GROUP}-random+hyperband-s{seed}"))
        assert not any(rungs(f"{GROUP}-random-s{seed}"))


def seconds_to_target(url: str, arm: str, target: float) -> list[float | None]:
    """Per seed, the training seconds (`train_seconds` of every trial, pruned ones included,
    in trial-number order) until that seed's best so far reaches `target`; None: never.
    Computed here by hand from the storage (the failed-trial fallback is not needed: none
    fail)."""
    spent: list[float | None] = []
    for seed in range(SEEDS):
        study = optuna.load_study(study_name=f"{GROUP}-{arm}-s{seed}", storage=url)
        total, best, got = 0.0, -math.inf, None
        for t in sorted(study.trials, key=lambda t: t.number):
            total += t.user_attrs["train_seconds"]
            if t.value is not None and t.state == optuna.trial.TrialState.COMPLETE:
                best = max(best, t.value)
            if got is None and best >= target - 1e-9:
                got = total
        spent.append(got)
    return spent


def baseline_target(url: str) -> float:
    """random's median final best (numpy's median, as the report takes it)."""
    finals = []
    for seed in range(SEEDS):
        study = optuna.load_study(study_name=f"{GROUP}-random-s{seed}", storage=url)
        finals.append(max(t.value for t in study.trials if t.value is not None))
    return float(np.median(finals))


def lower_median(spent: list[float | None]) -> float | None:
    """Half of the seeds within it (the first to get there of 2); None: fewer got there."""
    ordered = sorted(math.inf if s is None else s for s in spent)
    value = ordered[math.ceil(len(ordered) / 2) - 1]
    return None if math.isinf(value) else value


def test_the_report_leads_with_compute_to_target(ran: Ran) -> None:
    out = ran.root / report_folder(GROUP)
    md = (out / "summary.md").read_text()
    target = baseline_target(ran.url)
    seconds = lower_median(seconds_to_target(ran.url, "random", target))
    assert seconds is not None  # the baseline reaches its own median in half its seeds
    pruned = seconds_to_target(ran.url, "random+hyperband", target)
    pruned_median = lower_median(pruned)
    reached = sum(s is not None for s in pruned)
    table = md.split("| arm | seeds | trials | compute to target [95% CI] |", 1)[1]
    random_row = next(line for line in table.splitlines() if line.startswith("| random |"))
    assert random_row.startswith(f"| random | {SEEDS} | {SEEDS * TRIALS} | ")
    cell = random_row.split(" | ")[3]  # e.g. "0.134 s [0.134 s, never]"
    assert float(cell.split(" s [")[0]) == pytest.approx(seconds, rel=0.01)
    assert "| baseline |" in random_row
    pruned_row = next(line for line in table.splitlines() if line.startswith("| random+hyper"))
    cells = pruned_row.split(" | ")
    assert cells[5] == f"{reached}/{SEEDS}"
    lead = md.split("\n\n")[2]  # title, setup line, then the headline paragraph
    assert lead.startswith(f"Target: random's median final best ({target:.4f})")
    if pruned_median is None:  # the one right outcome, known from the storage
        assert cells[3].startswith("not reached")
        assert "random+hyperband does not reach random's median final best" in lead
        assert "shows no compute saving" in lead
        assert "random+hyperband reaches random's median final best" not in lead
    else:
        assert float(cells[3].split(" s [")[0]) == pytest.approx(pruned_median, rel=0.01)
        ratio = pruned_median / seconds
        assert float(cells[4].split("x [")[0]) == pytest.approx(ratio, abs=0.006)
        assert f"random+hyperband reaches random's median final best ({target:.4f}) with" in lead
        assert f"with {ratio:.2f}x of its training compute (95% CI" in lead
        assert "shows no compute saving" not in lead
    assert "`random+hyperband` (pruner hyperband)" in md
    html = (out / "report.html").read_text()
    assert "by training seconds" in html  # the best-so-far figure's compute axis
    assert "compute to target [95% CI]" in html
    assert (out / "best_so_far.png").read_bytes()[:4] == b"\x89PNG"
    assert "Target: random's median final best" in ran.result.stdout


@pytest.mark.parametrize(
    ("arms", "message"),
    [
        ("random,tpe+bogus", "unknown pruner 'bogus' in --arms arm 'tpe+bogus'"),
        ("random,bogus+median", "unknown sampler 'bogus' in --arms arm 'bogus+median'"),
        ("random,random", "--arms repeats a name"),
    ],
)
def test_a_bad_arm_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, arms: str, message: str
) -> None:
    file = write_tiny_study(tmp_path, GROUP)
    db = tmp_path / "hpo.db"
    result = run_hpo(
        "--storage", f"sqlite:///{db}", "compare", str(file), "--arms", arms, cwd=tmp_path
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not db.exists()
    assert not (tmp_path / "reports").exists()


def test_arms_and_its_old_name_together_are_refused(tmp_path: Path) -> None:
    file = write_tiny_study(tmp_path, GROUP)
    result = run_hpo(
        "--storage",
        f"sqlite:///{tmp_path / 'hpo.db'}",
        "compare",
        str(file),
        "--arms",
        "random",
        "--samplers",
        "tpe",
    )
    assert result.returncode == 2
    assert "--arms or its older name --samplers, not both" in result.stderr
