"""hpo.report.dashboard: optuna-dashboard on our storage with the artifact folder, refusing
requests for other hosts (DNS rebinding) and, off loopback, requests without the token.

The guard is tested on a fake app here, then on the real server (`hpo dashboard`) with
forged headers; tests/hpo/compare/test_publish.py reads what the real server serves.
"""

from __future__ import annotations

import http.client
import io
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import optuna_dashboard
import pytest
from optuna.artifacts import FileSystemArtifactStore

from hpo.errors import HpoError
from hpo.report.dashboard import (
    HostGuard,
    allowed_hosts,
    dashboard_token,
    guarded_app,
    request_host,
)
from tests.helpers import HpoProcesses, free_port, run_hpo, wait_for


def test_the_app_gets_the_storage_and_a_created_artifact_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(
        optuna_dashboard, "wsgi", lambda storage, **kw: calls.append((storage, kw)) or "app"
    )
    storage = optuna.storages.InMemoryStorage()
    folder = tmp_path / "not" / "there" / "yet"
    guard = guarded_app(storage, host="127.0.0.1", artifact_dir=folder)
    assert folder.is_dir() and guard.app == "app"
    [(given, options)] = calls
    assert given is storage
    store = options["artifact_store"]
    assert isinstance(store, FileSystemArtifactStore)
    store.write("probe", io.BytesIO(b"artifact"))  # lands in the folder the dashboard serves
    assert (folder / "probe").read_bytes() == b"artifact"


# ---------------------------------------------------------------- the guard


def _call(guard: HostGuard, **environ: str) -> tuple[str, dict[str, str]]:
    """The status and headers `guard` answers a GET with these environ keys."""
    answer: list[Any] = []
    guard(
        {"REQUEST_METHOD": "GET", **environ},
        lambda status, headers: answer.extend([status, dict(headers)]),
    )
    return answer[0], answer[1]


def _ok(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b"ok"]


ON_LOOPBACK = HostGuard(_ok, allowed_hosts("127.0.0.1", ["hpo.lab"]))


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"HTTP_HOST": "127.0.0.1:8080"}, "200 OK"),
        ({"HTTP_HOST": "localhost:8080"}, "200 OK"),
        ({"HTTP_HOST": "[::1]:8080"}, "200 OK"),
        ({"HTTP_HOST": "LOCALHOST"}, "200 OK"),
        ({"HTTP_HOST": "hpo.lab:8080"}, "200 OK"),  # --allow-host hpo.lab
        ({"HTTP_HOST": "attacker.example:8080"}, "403 Forbidden"),  # DNS rebinding
        ({"HTTP_HOST": "127.0.0.1.attacker.example"}, "403 Forbidden"),
        ({}, "403 Forbidden"),  # HTTP/1.0 without a Host
        ({"HTTP_HOST": "127.0.0.1:8080", "HTTP_ORIGIN": "http://127.0.0.1:8080"}, "200 OK"),
        ({"HTTP_HOST": "127.0.0.1:8080", "HTTP_ORIGIN": "http://[::1]:8080"}, "200 OK"),
        (
            {"HTTP_HOST": "127.0.0.1:8080", "HTTP_ORIGIN": "https://attacker.example"},
            "403 Forbidden",
        ),
        ({"HTTP_HOST": "127.0.0.1:8080", "HTTP_ORIGIN": "null"}, "403 Forbidden"),
    ],
)
def test_only_this_dashboards_names_are_served(headers: dict[str, str], status: str) -> None:
    assert _call(ON_LOOPBACK, **headers)[0] == status


def test_a_token_comes_in_the_url_then_in_a_cookie_or_a_header() -> None:
    guard = HostGuard(_ok, allowed_hosts("0.0.0.0", ["hpo.lab"]), token="s3cret-token")
    host = {"HTTP_HOST": "hpo.lab:8080"}
    assert _call(guard, **host)[0] == "403 Forbidden"
    assert _call(guard, **host, QUERY_STRING="token=wrong")[0] == "403 Forbidden"
    status, headers = _call(guard, **host, QUERY_STRING="token=s3cret-token")
    assert status == "200 OK"
    assert headers["Set-Cookie"].startswith("hpo_dashboard_token=s3cret-token; HttpOnly;")
    assert _call(guard, **host, HTTP_COOKIE="hpo_dashboard_token=s3cret-token")[0] == "200 OK"
    assert _call(guard, **host, HTTP_AUTHORIZATION="Bearer s3cret-token")[0] == "200 OK"
    assert _call(guard, HTTP_HOST="evil.example", QUERY_STRING="token=s3cret-token")[0] == (
        "403 Forbidden"  # the token does not open the door to another host
    )


def test_a_wildcard_bind_allows_this_machines_name() -> None:
    assert socket.gethostname().lower() in allowed_hosts("0.0.0.0")
    assert socket.gethostname().lower() not in allowed_hosts("127.0.0.1")
    assert request_host("[::1]:8080") == "::1" and request_host("Hpo.Lab:1") == "hpo.lab"


@pytest.mark.parametrize(
    ("host", "token", "no_token", "expected"),
    [
        ("127.0.0.1", None, False, (None, False)),  # loopback: a token only if given
        ("localhost", "t", False, ("t", False)),
        ("::1", None, False, (None, False)),
        ("0.0.0.0", "t", False, ("t", False)),
        ("10.0.0.5", None, True, (None, False)),  # --no-token
    ],
)
def test_a_token_is_required_off_loopback(host, token, no_token, expected) -> None:
    assert dashboard_token(host, token, no_token=no_token) == expected


def test_a_token_is_generated_off_loopback_and_contradictions_are_refused() -> None:
    token, generated = dashboard_token("0.0.0.0", None, no_token=False)
    assert generated and token is not None and len(token) >= 32
    assert dashboard_token("::", None, no_token=False)[0] != token
    with pytest.raises(HpoError, match="--no-token and --token"):
        dashboard_token("0.0.0.0", "t", no_token=True)


# ---------------------------------------------------------------- the real server


def _request(port: int, method: str, path: str, **headers: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(method, path, headers={"Host": f"127.0.0.1:{port}", **headers})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


@pytest.fixture
def dashboard(sqlite_url: str) -> Iterator[tuple[Callable[..., int], str]]:
    """A study in a SQLite file; starts `hpo dashboard ARGS` on a free loopback port."""
    optuna.create_study(study_name="keep", storage=sqlite_url)
    with HpoProcesses() as processes:

        def start(*args: str) -> int:
            port = free_port()
            process = processes.start(
                "dashboard", "--port", str(port), *args, env={"HPO_STORAGE": sqlite_url}
            )

            def answers() -> bool:
                if process.poll() is not None:
                    pytest.fail(f"hpo dashboard exited: {process.communicate()}")
                try:
                    _request(port, "GET", "/api/meta")
                except OSError:
                    return False
                return True

            wait_for(answers, "hpo dashboard to answer", timeout=60)
            return port

        yield start, sqlite_url


def test_a_forged_host_cannot_delete_a_study(dashboard) -> None:
    """Was: DELETE with `Host: attacker.example` answered 204, and the study was gone."""
    start, url = dashboard
    port = start()
    forged = {"Host": f"attacker.example:{port}"}
    assert _request(port, "DELETE", "/api/studies/1", **forged).status == 403
    assert _request(port, "GET", "/api/studies", **forged).status == 403
    cross_site = {"Origin": "http://attacker.example"}
    assert _request(port, "DELETE", "/api/studies/1", **cross_site).status == 403
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["keep"]
    listed = _request(port, "GET", "/api/studies")
    assert listed.status == 200


def test_a_given_token_is_required_on_loopback_too(dashboard) -> None:
    start, _url = dashboard
    port = start("--token", "s3cret-token")
    assert _request(port, "GET", "/api/studies").status == 403
    opened = _request(port, "GET", "/api/studies?token=s3cret-token")
    assert opened.status == 200
    cookie = opened.getheader("Set-Cookie").split(";")[0]
    assert _request(port, "GET", "/api/studies", Cookie=cookie).status == 200


def test_a_network_bind_warns_and_prints_a_generated_token_once(sqlite_url: str) -> None:
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: the warning and the token come
    # before the bind, which then fails in one line, exposing nothing.
    result = run_hpo("dashboard", "--host", "192.0.2.1", env={"HPO_STORAGE": sqlite_url})
    assert result.returncode == 2
    warning, error = result.stderr.strip().splitlines()
    assert warning.startswith("warning: the dashboard on 192.0.2.1 can be reached from the")
    assert "every request needs the token" in warning
    assert error.startswith("error: cannot listen on 192.0.2.1:8080")
    assert re.search(r"on http://192\.0\.2\.1:8080/\?token=[\w-]{32} for ", result.stdout)


def test_the_dashboard_serves_a_multi_objective_study_with_its_metric_names(
    dashboard, tmp_path: Path
) -> None:
    """optuna-dashboard labels its Pareto-front plot with the study's metric names and
    greys out trials whose `constraints` list has a value > 0."""
    import json

    from hpo.config.spec import load_spec
    from hpo.storage.open import open_storage
    from hpo.study.create import open_study
    from tests.helpers import study_text

    start, url = dashboard
    path = tmp_path / "front.toml"
    text = study_text("front", "depth = 1", data='name = "rings"')
    path.write_text(
        text.replace("[study]\n", '[study]\nmetrics = ["val_accuracy", "params"]\n', 1)
        + "\n[constraints]\nmax_params = 100\n"
    )
    study = open_study(open_storage(url), load_spec(path))
    for accuracy, params in ((0.9, 50.0), (0.95, 150.0)):
        study.add_trial(
            optuna.trial.create_trial(
                values=[accuracy, params], system_attrs={"constraints": [params - 100]}
            )
        )
    port = start()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/api/studies", headers={"Host": f"127.0.0.1:{port}"})
    listed = json.loads(connection.getresponse().read())["study_summaries"]
    [study_id] = [s["study_id"] for s in listed if s["study_name"] == "front"]
    connection.request("GET", f"/api/studies/{study_id}", headers={"Host": f"127.0.0.1:{port}"})
    detail = json.loads(connection.getresponse().read())
    connection.close()
    assert detail["objective_names"] == ["val_accuracy", "params"]
    assert detail["directions"] == ["maximize", "minimize"]
    # the study's queued trials come first; the two added ones follow
    served = [(t["number"], t["constraints"]) for t in detail["trials"] if t["state"] == "Complete"]
    assert [constraints for _, constraints in served] == [[-50.0], [50.0]]
    # (the dashboard's own best_trials ignore constraints; its plot greys the > 0 ones,
    # and Optuna's study.best_trials, which hpo best reads, leaves them out)
    assert [t.number for t in study.best_trials] == [served[0][0]]
