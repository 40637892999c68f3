"""hpo.storage.urls: parsing, normalizing and masking storage URLs (nothing connects)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo.errors import StorageError
from hpo.storage.urls import default_artifacts_dir, is_proxy_url, mask_url, normalize_url, scrub

PASSWORD = "pw-Rt5-secret"


def test_mask_url_and_scrub_hide_the_password() -> None:
    url = f"postgresql://hpo:{PASSWORD}@db/hpo"
    assert mask_url(url) == "postgresql://hpo:***@db/hpo"
    assert PASSWORD not in mask_url("not a url://hpo:" + PASSWORD + "@db")
    assert scrub(f"failed for {PASSWORD}", url) == "failed for ***"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://hpo:p@ss@db/hpo", "postgresql://***@db/hpo"),
        ("grpc://u:s3@cr@et@host:1", "grpc://***@host:1"),
        ("postgresql://hpo:p@ss@db:x/hpo", "postgresql://***@db:x/hpo"),  # malformed as well
    ],
)
def test_a_password_with_an_unescaped_at_sign_is_hidden_whole(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    password = url.split("://")[1].split(":", 1)[1].rsplit("@", 1)[0]
    assert scrub(f"failed for {password}", url) == "failed for ***"


def test_normalize_url_picks_psycopg_and_refuses_other_backends() -> None:
    assert normalize_url("postgresql://u@db/x") == "postgresql+psycopg://u@db/x"
    with pytest.raises(StorageError, match="unsupported storage 'mysql'"):
        normalize_url("mysql://u@db/x")
    assert is_proxy_url(" GRPC://127.0.0.1:13000") and not is_proxy_url("sqlite:///x.db")


def test_default_artifacts_dir_is_beside_a_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert default_artifacts_dir(url) == tmp_path / "hpo-artifacts"


# Found by mutation testing (mutmut over hpo/storage/urls.py): behaviours no test pinned.


def test_the_postgres_alias_and_sqlite_urls_pass_through_normalize() -> None:
    assert normalize_url("postgres://u@db/x") == "postgresql+psycopg://u@db/x"  # Heroku's form
    assert normalize_url("sqlite:///hpo.db") == "sqlite:///hpo.db"
    with pytest.raises(StorageError, match="malformed storage URL 'not a url'"):
        normalize_url("not a url")


def test_an_unparseable_url_without_a_password_is_shown_as_it_is() -> None:
    assert mask_url("postgresql://db:notaport/x") == "postgresql://db:notaport/x"
    assert mask_url("postgresql://u:p@ss:w@rd@db:notaport/x") == "postgresql://***@db:notaport/x"


def test_tls_proxy_urls_are_proxy_urls() -> None:
    assert is_proxy_url("grpcs://proxy:13000") and not is_proxy_url("grpcs")


def test_a_server_database_keeps_its_artifacts_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_artifacts_dir("postgresql://u@db/x") == tmp_path / "hpo-artifacts"
    assert default_artifacts_dir("sqlite:///:memory:") == tmp_path / "hpo-artifacts"
