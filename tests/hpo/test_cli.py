"""The `hpo` command as a user meets it: end to end runs and one-line errors."""

from __future__ import annotations

import os
import sys

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState

from hpo.cli import cli, main
from tests.helpers import run_hpo

TRIAL_ATTRS = {
    "n_params",
    "device",
    "host",
    "epochs",
    "train_seconds",
    "samples_per_s",
    "test_accuracy",
}


def call_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process through main(), as the console script does."""
    monkeypatch.setattr(sys, "argv", ["hpo", *args])
    for key in [k for k in os.environ if k.startswith("HPO_")]:
        monkeypatch.delenv(key)
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def load(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


@pytest.mark.slow
def test_launch_with_two_workers_finishes_exactly_the_budget(
    tmp_path, write_study, sqlite_url
) -> None:
    study_file = write_study("e2e", trials=7, epochs=2)
    url = sqlite_url
    result = run_hpo(
        "--storage", url, "launch", "study", str(study_file), "--workers", "2", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "database is locked" not in result.stderr
    assert "7/7 trials" in result.stdout and "Best trial" in result.stdout

    trials = load(url, "e2e").get_trials()
    assert len(trials) == 7
    assert {t.state for t in trials} == {TrialState.COMPLETE}
    assert sorted(t.number for t in trials) == list(range(7))
    for trial in trials:
        assert set(trial.user_attrs) >= TRIAL_ATTRS, trial.user_attrs
        assert trial.user_attrs["device"] == "cpu"
        assert 0.0 <= trial.user_attrs["test_accuracy"] <= 1.0
        assert len(trial.intermediate_values) == 2  # one report per epoch
    # two workers really ran: their seeds differ, so random search draws differ
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 7

    # same command again: resumes, nothing to do; a larger budget adds only the difference
    again = run_hpo(
        "--storage", url, "launch", "study", str(study_file), "--workers", "2", cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert len(load(url, "e2e").get_trials()) == 7
    more = run_hpo(
        "--storage", url, "launch", "study", str(study_file), "--trials", "9", cwd=tmp_path
    )
    assert more.returncode == 0, more.stderr
    assert len(load(url, "e2e").get_trials()) == 9

    listing = run_hpo("--storage", url, "studies", cwd=tmp_path)
    assert listing.returncode == 0 and "e2e" in listing.stdout
    best = run_hpo("--storage", url, "best", "e2e", cwd=tmp_path)
    assert best.returncode == 0 and "test accuracy" in best.stdout


@pytest.mark.slow
def test_median_pruner_prunes_hopeless_trials(tmp_path, write_study, sqlite_url) -> None:
    # Half the trials learn with lr 1e-6 (hopeless), half with 0.05: once a good trial
    # has completed, the median rule must stop the hopeless ones early.
    study_file = write_study("prune", trials=10, epochs=6, pruner="median")
    text = study_file.read_text()
    text = text.replace(
        "lr = { low = 1e-3, high = 1e-1, log = true }", "lr = { choices = [1e-6, 0.05] }"
    )
    text = text.replace(
        '[pruner]\nname = "median"',
        '[pruner]\nname = "median"\noptions = { n_startup_trials = 2, n_warmup_steps = 1 }',
    )
    study_file.write_text(text)
    url = sqlite_url
    result = run_hpo("--storage", url, "launch", "study", str(study_file), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    trials = load(url, "prune").get_trials()
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, [(t.params, t.state) for t in trials]
    assert all(len(t.intermediate_values) < 6 for t in pruned)
    assert len(trials) == 10


BAD_INPUT = {
    "missing file": (["launch", "study", "nope.toml"], "nope.toml: no such study file"),
    "non-positive trials": (
        ["launch", "study", "{study}", "--trials", "0"],
        "--trials must be >= 1",
    ),
    "negative workers": (
        ["launch", "study", "{study}", "--workers", "-1"],
        "--workers must be >= 0",
    ),
    "unreachable postgres": (
        ["--storage", "postgresql://hpo:s3cret@127.0.0.1:1/hpo", "launch", "study", "{study}"],
        "cannot reach storage postgresql+psycopg://hpo:***@127.0.0.1:1/hpo",
    ),
    "malformed url": (["--storage", "not a url", "studies"], "malformed storage URL"),
    "proxy url with a password": (
        ["--storage", "grpc://hpo:s3cret@h:1", "studies"],
        "malformed proxy URL 'grpc://hpo:***@h:1'",
    ),
    "proxy in front of a proxy with a password": (
        ["--storage", "grpc://hpo:s3cret@h:1", "proxy", "--port", "0"],
        "not another proxy (grpc://hpo:***@h:1)",
    ),
    "unsupported backend": (
        ["--storage", "mysql://x@h/db", "studies"],
        "unsupported storage 'mysql'",
    ),
    "sqlite folder missing": (
        ["--storage", "sqlite:///no/such/dir/x.db", "studies"],
        "does not exist",
    ),
    "unknown gpu": (
        ["launch", "study", "{study}", "--gpus", "3"],
        "--gpus 3: GPU 3 is not visible",
    ),
    "mnist without data dir": (["launch", "study", "{mnist}"], "mnist needs --data-dir"),
    "best of missing study": (["best", "ghost"], "no study named 'ghost'"),
    "control character in --name": (
        ["launch", "study", "{study}", "--name", "a\tb", "--workers", "0"],
        "--name: study.name: 'a\\tb': a study name takes printable characters only",
    ),
    "worker of missing study": (
        ["worker", "--study", "ghost", "--gpus", "none"],
        "no hpo study named 'ghost'",
    ),
}


@pytest.mark.parametrize("args, message", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    args, message, tmp_path, monkeypatch, capsys, write_study
) -> None:
    study = write_study("ok")
    mnist = write_study("m", dataset="mnist")
    monkeypatch.chdir(tmp_path)
    args = [a.format(study=study, mnist=mnist) for a in args]
    code, out, err = call_main(monkeypatch, capsys, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    assert "Traceback" not in err and "s3cret" not in err + out
    db = tmp_path / "hpo.db"
    if db.exists():  # only commands that read the storage may have created it, empty
        assert optuna.get_all_study_summaries(f"sqlite:///{db}") == []


def test_malformed_study_file_via_cli(tmp_path, monkeypatch, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[study\nname = 1\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = call_main(monkeypatch, capsys, "launch", "study", str(bad))
    assert code == 2 and "malformed TOML" in err and "line 1" in err
    assert not (tmp_path / "hpo.db").exists()


def test_existing_name_with_another_spec_is_refused(
    tmp_path, monkeypatch, capsys, write_study, create_study, sqlite_url
) -> None:
    url = sqlite_url
    create_study(url, "same", epochs=2)
    other = write_study("same", epochs=3)  # same name, other training budget
    monkeypatch.chdir(tmp_path)
    code, _, err = call_main(monkeypatch, capsys, "--storage", url, "launch", "study", str(other))
    assert code == 2
    assert "already exists" in err and "train.epochs" in err and "--name" in err
    study = load(url, "same")
    assert study.user_attrs["hpo_spec"]["train"]["epochs"] == 2
    assert all(t.state == TrialState.WAITING for t in study.get_trials())


def test_k8s_writes_manifests_for_a_valid_study_only(
    tmp_path, monkeypatch, capsys, write_study
) -> None:
    study = write_study("kube")
    monkeypatch.chdir(tmp_path)
    args = ["k8s", str(study), "--workers", "2", "--image", "hpo:1", "--out", "m"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "kubectl apply -f m" in result.output
    assert (tmp_path / "m" / "60-workers.yaml").is_file()
    bad = tmp_path / "bad.toml"  # a study file the launch Job would refuse in the cluster
    bad.write_text(study.read_text().replace('name = "rings"', 'name = "ringz"'))
    code, _, err = call_main(monkeypatch, capsys, "k8s", str(bad), *args[2:6], "--out", "b")
    assert code == 2 and "data.name: unknown dataset 'ringz'" in err
    assert not (tmp_path / "b").exists()


def test_studies_and_best_list_a_stored_study_with_markup_and_escapes(
    monkeypatch, sqlite_url
) -> None:
    name = "evil[/]\x1b[2J\nx"  # made before names were checked, or by another tool
    study = optuna.create_study(study_name=name, storage=sqlite_url, direction="maximize")
    study.enqueue_trial({})
    trial = study.ask()
    trial.set_user_attr("host", "[/]box\x1b]0;owned\x07")
    study.tell(trial, 0.5)
    for key in [k for k in os.environ if k.startswith("HPO_")]:
        monkeypatch.delenv(key)
    runner = CliRunner()
    listed = runner.invoke(cli, ["--storage", sqlite_url, "studies"], catch_exceptions=False)
    assert listed.exit_code == 0, listed.output
    assert "evil[/]\\x1b[2J\\nx" in listed.output
    best = runner.invoke(cli, ["--storage", sqlite_url, "best", name], catch_exceptions=False)
    assert best.exit_code == 0, best.output
    assert "[/]box\\x1b]0;owned\\x07" in best.output
    assert "\x1b" not in listed.output + best.output and "\x07" not in best.output
