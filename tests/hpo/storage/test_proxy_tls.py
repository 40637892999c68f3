"""`hpo proxy` over TLS (grpcs://), and mutual TLS as the proxy's authentication.

Certificates are made per test module with the openssl command: a CA, a server certificate
for 127.0.0.1 and a client certificate, both signed by it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import optuna
import pytest

from hpo.errors import StorageError
from hpo.storage.open import open_storage
from tests.helpers import HpoProcesses, run_hpo, start_proxy

pytestmark = pytest.mark.timeout(120)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _signed(name: str, subject: str, extension: str, cwd: Path) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
             f"{name}.csr", "-subj", subject, cwd=cwd)  # fmt: skip
    (cwd / f"{name}.ext").write_text(extension + "\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext",
             cwd=cwd)  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.pem, server.pem/.key (127.0.0.1, localhost), client.pem/.key, other-ca.pem."""
    folder = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key",
                 "-out", f"{ca}.pem", "-days", "2", "-subj", f"/CN=hpo test {ca}", cwd=folder)  # fmt: skip
    _signed("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost", folder)
    _signed("client", "/CN=hpo worker", "extendedKeyUsage=clientAuth", folder)
    return folder


def _tls_env(monkeypatch: pytest.MonkeyPatch, pki: Path, *, ca: str = "ca", client: bool) -> None:
    monkeypatch.setenv("HPO_TLS_CA", str(pki / f"{ca}.pem"))
    for variable, suffix in (("HPO_TLS_CERT", "pem"), ("HPO_TLS_KEY", "key")):
        if client:
            monkeypatch.setenv(variable, str(pki / f"client.{suffix}"))
        else:
            monkeypatch.delenv(variable, raising=False)


def _server_options(pki: Path, *, mutual: bool) -> list[str]:
    options = ["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key")]
    return options + (["--tls-client-ca", str(pki / "ca.pem")] if mutual else [])


def test_a_tls_proxy_serves_grpcs_to_a_client_that_trusts_its_ca(
    sqlite_url: str, pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tls_env(monkeypatch, pki, client=False)
    with HpoProcesses() as processes:
        _, url = start_proxy(processes, sqlite_url, *_server_options(pki, mutual=False))
        assert url.startswith("grpcs://127.0.0.1:")
        storage = open_storage(url)
        optuna.create_study(study_name="over-tls", storage=storage)
        assert [s.study_name for s in open_storage(sqlite_url).get_all_studies()] == ["over-tls"]


def test_a_client_that_does_not_trust_the_certificate_gets_one_line(
    sqlite_url: str, pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tls_env(monkeypatch, pki, ca="other-ca", client=False)
    with HpoProcesses() as processes:
        _, url = start_proxy(processes, sqlite_url, *_server_options(pki, mutual=False))
        with pytest.raises(StorageError, match="HPO_TLS_CA names the CA"):
            open_storage(url)
        plain = url.replace("grpcs://", "grpc://")
        with pytest.raises(StorageError, match="takes grpcs:// URLs"):
            open_storage(plain)


def test_mutual_tls_refuses_a_client_without_a_certificate(
    sqlite_url: str, pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with HpoProcesses() as processes:
        _, url = start_proxy(processes, sqlite_url, *_server_options(pki, mutual=True))
        _tls_env(monkeypatch, pki, client=False)
        with pytest.raises(StorageError, match="cannot reach storage proxy"):
            open_storage(url)
        _tls_env(monkeypatch, pki, client=True)
        assert open_storage(url).get_all_studies() == []


def test_a_study_runs_through_a_mutual_tls_proxy(
    sqlite_url: str, pki: Path, write_study, tmp_path: Path
) -> None:
    path = write_study("tls-launch", trials=2, epochs=1)
    env = {
        "HPO_TLS_CA": str(pki / "ca.pem"),
        "HPO_TLS_CERT": str(pki / "client.pem"),
        "HPO_TLS_KEY": str(pki / "client.key"),
        "HPO_ARTIFACTS": str(tmp_path / "artifacts"),
    }
    with HpoProcesses() as processes:
        _, url = start_proxy(processes, sqlite_url, *_server_options(pki, mutual=True))
        result = run_hpo(
            "launch", "study", str(path), "--workers", "1", env={**env, "HPO_STORAGE": url}
        )
    assert result.returncode == 0, result.stderr[-2000:]
    study = optuna.load_study(study_name="tls-launch", storage=open_storage(sqlite_url))
    assert len([t for t in study.trials if t.state.is_finished()]) == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--tls-cert", "{pki}/server.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-cert", "{pki}/server.pem", "--tls-key", "{pki}/server.csr"], "is not a PEM file"),
    ],
)
def test_tls_options_are_checked_in_one_line(
    sqlite_url: str, pki: Path, options: list[str], message: str
) -> None:
    (pki / "server.csr").write_text("not a key\n")  # the CSR is not needed after signing
    args = [option.format(pki=pki) for option in options]
    result = run_hpo("proxy", "--port", "0", *args, env={"HPO_STORAGE": sqlite_url})
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_an_unreadable_client_file_is_one_line(pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPO_TLS_CA", str(pki / "missing.pem"))
    with pytest.raises(StorageError, match="cannot read HPO_TLS_CA="):
        open_storage("grpcs://127.0.0.1:1")
