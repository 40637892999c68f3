"""hpo.compare.publish: a comparison in optuna-dashboard, the real server (`hpo dashboard`)
read through its HTTP API.

The studies are made in-process with a fast fake objective (the real training path is
covered by test_service.py); what is tested here is what the dashboard serves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from hpo.compare import build_report
from hpo.compare.load import GROUP_ATTR, SAMPLER_ATTR, SEED_ATTR
from hpo.compare.publish import FIGURE_PREFIX, publish_comparison
from hpo.compare.run import derive_arms
from hpo.config.spec import load_spec
from hpo.runtime.worker import run_worker
from hpo.storage.open import open_storage
from hpo.storage.urls import default_artifacts_dir
from hpo.study.create import open_study
from tests.conftest import write_tiny_study
from tests.helpers import HpoProcesses, free_port, wait_for

TRIALS = 6


@dataclass(frozen=True)
class Published:
    url: str
    artifacts: Path
    lead: str
    names: list[str]


def fake_objective(_spec: object, _stop: threading.Event) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-3, 1e-1, log=True)
        depth = trial.suggest_int("depth", 1, 2)
        trial.set_user_attr("diag_init_act_std", [1.0, 0.5 * depth])
        trial.set_user_attr("diag_init_grad_norm", [0.01 * depth, 1.0])
        trial.set_user_attr("diag_final_dead_fraction", [0.1 * depth, 0.0])
        return 1.0 - abs(lr - 0.01) - 0.01 * depth

    return objective


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    root = tmp_path_factory.mktemp("dash")
    url = f"sqlite:///{root / 'hpo.db'}"
    file = write_tiny_study(root, "tiny", trials=TRIALS, epochs=1)
    storage = open_storage(url)
    arms = derive_arms(load_spec(file), ["random", "tpe"], 2)
    for arm in arms:
        study = open_study(storage, arm.spec, trials=TRIALS)
        study.set_user_attr(GROUP_ATTR, arm.group)
        study.set_user_attr(SAMPLER_ATTR, arm.sampler)
        study.set_user_attr(SEED_ATTR, arm.seed)
        run_worker(storage, arm.spec.name, objective_factory=fake_objective)
    built = build_report(storage, "tiny", root / "report")
    artifacts = default_artifacts_dir(url)
    lead = publish_comparison(storage, built, artifacts)
    publish_comparison(storage, built, artifacts)  # again: replaces, does not pile up
    return Published(url, artifacts, lead.name, [a.spec.name for a in arms])


def get(base: str, path: str) -> bytes:
    with urllib.request.urlopen(base + path, timeout=10) as response:
        return response.read()


@pytest.fixture(scope="module")
def server(published: Published) -> Iterator[str]:
    """`hpo dashboard` (the real optuna-dashboard server) on a free loopback port."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with HpoProcesses() as processes:
        process = processes.start(
            "dashboard", "--port", str(port), env={"HPO_STORAGE": published.url}
        )

        def answers() -> bool:
            if process.poll() is not None:
                pytest.fail(f"hpo dashboard exited: {process.communicate()}")
            try:
                get(base, "/api/meta")
            except OSError:
                return False
            return True

        wait_for(answers, "hpo dashboard to answer", timeout=60)
        yield base


def study_ids(base: str) -> dict[str, int]:
    studies = json.loads(get(base, "/api/studies"))["study_summaries"]
    return {s["study_name"]: s["study_id"] for s in studies}


def test_the_artifact_store_is_passed(server: str) -> None:
    assert json.loads(get(server, "/api/meta"))["artifact_is_available"] is True


def test_every_study_has_a_note_naming_sampler_seed_group_and_siblings(
    server: str, published: Published
) -> None:
    ids = study_ids(server)
    assert set(published.names) <= set(ids)
    for name in published.names:
        detail = json.loads(get(server, f"/api/studies/{ids[name]}"))
        body = detail["note"]["body"]
        sampler, seed = name.split("-")[1], int(name.split("-s")[-1])
        assert f"{sampler} search, seed {seed}" in body
        assert "**tiny**" in body
        for sibling in published.names:  # a link to every study of the group
            assert f"[{sibling}](/dashboard/studies/{ids[sibling]})" in body


def test_the_lead_study_carries_table_figures_and_files(server: str, published: Published) -> None:
    ids = study_ids(server)
    assert published.lead == "tiny-random-s0"
    detail = json.loads(get(server, f"/api/studies/{ids[published.lead]}"))
    assert "| random | 2 | 12 |" in detail["note"]["body"]
    assert "Mann-Whitney" in detail["note"]["body"]
    graphs = {g["id"]: json.loads(g["graph_object"]) for g in detail["plotly_graph_objects"]}
    assert set(graphs) == {
        FIGURE_PREFIX + k
        for k in ("best-so-far", "final-bests", "importances", "params", "diagnostics")
    }
    best = graphs[FIGURE_PREFIX + "best-so-far"]
    medians = [t for t in best["data"] if t.get("name", "").startswith("tpe median")]
    assert len(medians) == 1 and len(medians[0]["y"]) == TRIALS  # plain lists, one per trial
    files = {a["filename"]: a for a in detail["artifacts"]}
    assert set(files) == {
        "report.html",
        "summary.md",
        "best_so_far.png",
        "final_bests.png",
        "importances.png",
        "diagnostics.png",
    }  # published twice, listed once
    html = get(server, f"/artifacts/{ids[published.lead]}/{files['report.html']['artifact_id']}")
    assert b"fig-best-so-far" in html
    assert b"plotly.min.js" not in html.split(b"<style>")[0]  # plotly.js embedded, not linked
    png = get(server, f"/artifacts/{ids[published.lead]}/{files['best_so_far.png']['artifact_id']}")
    assert png[:4] == b"\x89PNG"
    other = json.loads(get(server, f"/api/studies/{ids['tiny-tpe-s1']}"))
    assert other["plotly_graph_objects"] == []
    assert other["artifacts"] == []


def test_republishing_left_no_orphan_files(published: Published) -> None:
    stored = [p for p in published.artifacts.iterdir() if p.is_file()]
    assert len(stored) == 6


def chromium(url: str, *flags: str) -> str:
    """Headless Chromium on `url` after its scripts ran (virtual time); its stdout."""
    done = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1400,1000",
            "--virtual-time-budget=15000",
            *flags,
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout


def looks_like_a_study_page(shot: Path) -> bool:
    """A study page is coloured (the blue app bar, plotted points and bars: over 5% of its
    pixels are saturated) and filled (over half of its inner 50x50-pixel tiles hold
    something besides the background, its most common colour). A blank or error page,
    grey text on white with a logo at most, is neither."""
    import matplotlib.image
    import numpy as np

    rgb = (matplotlib.image.imread(shot)[:, :, :3] * 255).round().astype(int)
    coloured = float(((rgb.max(axis=2) - rgb.min(axis=2)) > 60).mean())
    colours, counts = np.unique(rgb.reshape(-1, 3), axis=0, return_counts=True)
    other = np.abs(rgb - colours[counts.argmax()]).sum(axis=2) > 30
    h, w = (other.shape[0] // 50) * 50, (other.shape[1] // 50) * 50
    tiles = other[:h, :w].reshape(h // 50, 50, w // 50, 50).any(axis=(1, 3))
    filled = float(tiles[1:-1, 1:-1].mean())  # the page's frame left out
    return coloured > 0.05 and filled > 0.5


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_chromium_renders_the_lead_study_by_name_and_metric(
    server: str, published: Published, tmp_path: Path
) -> None:
    ids = study_ids(server)
    page = f"{server}/dashboard/studies/{ids[published.lead]}"
    # What the browser rendered (React builds the page from the API: the raw HTML holds
    # none of this): the study's name and its metric's name as the dashboard labels it.
    dom = chromium(page, "--dump-dom")
    assert published.lead in dom
    metric = optuna.load_study(study_name=published.lead, storage=published.url).metric_names
    assert metric == ["val_accuracy"]
    assert "val_accuracy" in dom
    shot = Path(os.environ.get("HPO_SCREENSHOT", tmp_path / "dashboard.png"))
    chromium(page, f"--screenshot={shot}")
    blank = tmp_path / "blank.png"
    chromium(f"{server}/no-such-page", f"--screenshot={blank}")
    # The picture check, shown to fail on the server's own (blank) error page first.
    assert not looks_like_a_study_page(blank)
    assert looks_like_a_study_page(shot)
