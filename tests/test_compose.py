"""docker-compose.yml, checked without a Docker engine: parse it, resolve variables the way
compose does, and check every command, variable, volume and file it refers to."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import click
import pytest

from hpo.cli import cli

yaml = pytest.importorskip("yaml")
ROOT = Path(__file__).resolve().parent.parent
VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def _substitute(text: str, env: dict[str, str], missing: set[str]) -> str:
    def one(match: re.Match[str]) -> str:
        name, operator, default = match.groups()
        if name in env:
            return env[name]
        if operator and operator.endswith("-"):
            return default
        missing.add(name)
        return ""

    return VARIABLE.sub(one, text.replace("$$", "\0")).replace("\0", "$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_variable_is_defined_by_env_example_or_a_default() -> None:
    missing: set[str] = set()
    _substitute((ROOT / "docker-compose.yml").read_text(), _env_example(), missing)
    assert not missing


def test_services_and_their_wiring(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "proxy", "launch", "worker", "dashboard"}
    assert "healthcheck" in services["postgres"]
    assert "ports" not in services["postgres"]  # the database stays off the host network
    assert services["launch"]["depends_on"]["proxy"]["condition"] == "service_healthy"
    worker = services["worker"]
    assert worker["depends_on"]["proxy"]["condition"] == "service_healthy"
    assert worker["depends_on"]["launch"]["condition"] == "service_completed_successfully"
    assert worker["restart"] == "on-failure"
    assert "replicas" not in worker.get("deploy", {})  # scalable with --scale worker=N
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    missing: set[str] = set()
    ports = [_substitute(p, _env_example(), missing) for p in services["dashboard"]["ports"]]
    assert ports == ["127.0.0.1:8080:8080"]


def _storage(service: dict[str, Any]) -> str:
    missing: set[str] = set()
    return _substitute(service["environment"]["HPO_STORAGE"], _env_example(), missing)


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_workers_talk_to_the_proxy_and_only_the_proxy_to_postgres(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    proxy = services["proxy"]
    missing: set[str] = set()
    command = [_substitute(part, _env_example(), missing) for part in proxy["command"]]
    assert command[:2] == ["hpo", "proxy"]
    assert _option(command, "--host") == "0.0.0.0"  # reachable on the compose network
    assert _storage(proxy).startswith("postgresql://") and "@postgres:5432/" in _storage(proxy)
    assert proxy["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in proxy and "ports" not in proxy  # not published on the host
    assert proxy["networks"] == ["backend"]
    url = f"grpc://proxy:{_option(command, '--port')}"
    for name in ("launch", "worker"):
        assert _storage(services[name]) == url, name
        assert "POSTGRES_PASSWORD" not in str(services[name]["environment"]), name
    # The proxy's health check probes the port it serves.
    probe = _substitute(" ".join(proxy["healthcheck"]["test"]), _env_example(), missing)
    assert f"'127.0.0.1', {_option(command, '--port')})" in probe
    assert not missing


def test_volumes_and_files_exist(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source in declared or (ROOT / source).exists(), volume
    assert (ROOT / "Dockerfile").is_file()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), line
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in (ROOT / ".dockerignore").read_text().splitlines()


def test_every_command_is_a_valid_hpo_invocation(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env_example()
    for name, service in compose["services"].items():
        if "command" not in service:
            continue
        missing: set[str] = set()
        command = [_substitute(part, env, missing) for part in service["command"]]
        assert command[0] == "hpo", name
        for part in command:  # every file the command names is in the image
            if part.startswith("studies/"):
                assert (ROOT / part).is_file(), part
        # click parses (and validates) the whole command line without running it.
        context = cli.make_context("hpo", command[1:], resilient_parsing=False)
        with context, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # click 8.2's protected_args
            group_args = context.protected_args + context.args
            subcommand_name, subcommand, rest = cli.resolve_command(context, group_args)
            assert subcommand is not None, name
            sub_context = subcommand.make_context(subcommand_name, rest, parent=context)
            if isinstance(subcommand, click.Group):
                inner_args = sub_context.protected_args + sub_context.args
                _, inner, inner_rest = subcommand.resolve_command(sub_context, inner_args)
                inner.make_context(inner.name, inner_rest, parent=sub_context)


def test_study_file_and_study_name_agree() -> None:
    env = _env_example()
    text = (ROOT / env["HPO_STUDY_FILE"]).read_text()
    assert f'name = "{env["HPO_STUDY"]}"' in text
