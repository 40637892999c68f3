"""The shared options (--storage, --artifacts, --heartbeat, --checkpoint-every): accepted
before or after the subcommand, listed in every command's help; fast start-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from hpo import cli
from hpo.config.settings import DEFAULT_STORAGE, HEARTBEAT_INTERVAL, Settings

COMMANDS = [["launch", "study"], ["worker"], ["studies"], ["best"], ["compare"], ["report"]]
COMMANDS += [["dashboard"], ["enqueue"]]
OPTIONS = {
    "--storage": ("sqlite:///x.db", "storage_url", "sqlite:///x.db"),
    "--artifacts": ("/tmp/arts", "artifacts", "/tmp/arts"),
    "--heartbeat": ("7", "heartbeat_interval", 7),
    "--checkpoint-every": ("2.5", "checkpoint_every", 2.5),
}


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """Settings that `hpo studies` received, instead of listing any storage."""
    received: list[Settings] = []
    monkeypatch.setattr(
        "hpo.service.list_studies", lambda settings: received.append(settings) or []
    )
    monkeypatch.setattr("hpo.report.console.print_studies", lambda *args: None)
    return received


def _invoke(args: list[str], env: dict[str, str] | None = None) -> Any:
    result = CliRunner().invoke(cli.cli, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("where", ["before", "after"])
def test_shared_option_before_or_after_the_command(option: str, where: str, seen) -> None:
    value, field, expected = OPTIONS[option]
    args = [option, value, "studies"] if where == "before" else ["studies", option, value]
    _invoke(args)
    assert getattr(seen[-1], field) == expected


def test_defaults_without_options(seen, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _invoke(["studies"], env={"HPO_STORAGE": None})
    assert seen[-1].storage_url == DEFAULT_STORAGE
    assert seen[-1].heartbeat_interval == HEARTBEAT_INTERVAL
    assert seen[-1].artifacts == str(tmp_path / "hpo-artifacts")


def test_command_line_beats_environment_wherever_it_stands(seen) -> None:
    env = {"HPO_STORAGE": "sqlite:///env.db"}
    _invoke(["--storage", "sqlite:///cmd.db", "studies"], env=env)
    assert seen[-1].storage_url == "sqlite:///cmd.db"
    _invoke(["studies"], env=env)
    assert seen[-1].storage_url == "sqlite:///env.db"
    _invoke(["--storage", "sqlite:///a.db", "studies", "--storage", "sqlite:///b.db"])
    assert seen[-1].storage_url == "sqlite:///b.db"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_lists_the_shared_options(command: list[str]) -> None:
    result = CliRunner().invoke(cli.cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    for option in OPTIONS:
        assert option in result.output, (command, option)


def test_bad_option_value_is_one_line() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "hpo", "studies", "--heartbeat", "0"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "error: --heartbeat must be >= 1, got 0 (see `hpo studies --help`)"
    ]


LIGHT_COMMANDS = [["--help"], ["--version"], ["studies"], ["best", "ghost"], ["report", "ghost"]]
LIGHT_COMMANDS += [["proxy", "--help"], ["worker", "--help"], ["launch", "study", "bad.toml"]]
LIGHT_COMMANDS += [["enqueue", "ghost", "--params", '{"lr": 0.01}']]
# Valid TOML, refused by the validator: a typo in a study file costs no torch import.
BAD_STUDY = '[study]\nname = "bad"\n[model]\nname = "cnn"\n[data]\nname = "digitz"\n'


@pytest.mark.parametrize("args", LIGHT_COMMANDS, ids=" ".join)
def test_commands_that_do_not_train_do_not_import_torch(args: list[str], tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(BAD_STUDY)
    probe = (
        "import sys\n"
        "from hpo.cli import cli\n"
        "try:\n"
        f"    cli.main({args!r}, prog_name='hpo', standalone_mode=False)\n"
        "except Exception as exc:\n"
        "    print('ERROR', exc)\n"
        "print('\\nIMPORTED', sorted(m for m in ('torch', 'models.layers', 'hpo.training.data') if m in sys.modules))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert "IMPORTED []" in run.stdout, run.stdout + run.stderr
    if "bad.toml" in args:  # refused, naming the key, before anything heavy loaded
        assert "data.name: unknown dataset 'digitz'" in run.stdout, run.stdout + run.stderr


def test_at_least_accepts_the_bound_and_refuses_below() -> None:
    at_least = cli.AtLeast(1)
    assert at_least.convert("1", None, None) == 1
    with pytest.raises(click.BadParameter, match="must be >= 1, got 0"):
        at_least.convert("0", None, None)
