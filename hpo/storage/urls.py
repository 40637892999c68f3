"""Storage URLs: parsed, normalized, and shown without their password.

The strings users give as --storage / HPO_STORAGE: `sqlite:///FILE`, `postgresql://...`
(SQLAlchemy URLs) or `grpc://HOST:PORT` (a running `hpo proxy`; `grpcs://` over TLS).
Nothing here connects; a password never reaches output, logs or errors (`mask_url`, `scrub`).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import sqlalchemy
from sqlalchemy.engine import URL, make_url

from hpo.config.settings import ARTIFACTS_FOLDER
from hpo.errors import StorageError

PROXY_SCHEME = "grpc"  # storage URLs of `hpo proxy`: grpc://HOST:PORT (hpo.storage.proxy_client)
TLS_PROXY_SCHEME = "grpcs"  # the same over TLS: `hpo proxy --tls-cert ... --tls-key ...`


def is_proxy_url(url: str) -> bool:
    """Whether `url` names a storage proxy (`grpc://` or `grpcs://HOST:PORT`), not a database."""
    scheme = url.strip().partition("://")[0].lower()
    return scheme in (PROXY_SCHEME, TLS_PROXY_SCHEME) and "://" in url


def url_host(host: str) -> str:
    """`host` as it stands before `:PORT` in an address or a URL: an IPv6 address in
    brackets (`[::]`, as gRPC and URLs need), anything else as it is."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def is_loopback(host: str) -> bool:
    """Whether `host` binds this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:  # a name: it may resolve to any address
        return False


def default_artifacts_dir(storage_url: str) -> Path:
    """hpo-artifacts/ beside a SQLite file; for a server database, in the current folder.

    The artifact folder holds epoch checkpoints and report files; optuna-dashboard serves it.
    """
    url = _parse_url(storage_url)
    local = url is not None and url.get_backend_name() == "sqlite"
    if local and url.database not in (None, "", ":memory:"):
        return Path(url.database).expanduser().resolve().parent / ARTIFACTS_FOLDER
    return Path(ARTIFACTS_FOLDER).resolve()


def _parse_url(url: str) -> URL | None:
    """The parsed URL, or None when it is malformed.

    SQLAlchemy raises ArgumentError for most malformed URLs but a plain ValueError for
    some (a port that is not a number), so both mean "malformed" here.
    """
    try:
        return make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return None


def normalize_url(url: str) -> str:
    """Parse a storage URL; a bare postgresql:// uses the psycopg 3 driver hpo ships with."""
    parsed = _parse_url(url)
    if parsed is None:
        raise StorageError(
            f"malformed storage URL {mask_url(url)!r}; expected e.g. sqlite:///hpo.db, "
            "postgresql://user@host:5432/dbname or grpc://host:13000 (hpo proxy)"
        )
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StorageError(
            f"unsupported storage {parsed.get_backend_name()!r} in {mask_url(url)!r}; "
            "use sqlite:///FILE, postgresql://user@host/dbname or grpc://host:port (hpo proxy)"
        )
    return parsed.render_as_string(hide_password=False)


def _parsed_whole(url: str) -> URL | None:
    """The parsed URL, unless it is malformed or its host holds an '@': a password with an
    unescaped '@' is cut there by the parser, and the rest of it would pass for the host."""
    parsed = _parse_url(url)
    return parsed if parsed is not None and "@" not in (parsed.host or "") else None


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, safe for output, logs and errors."""
    parsed = _parsed_whole(url)
    if parsed is not None:
        return parsed.render_as_string(hide_password=True)
    # Unparseable: hide everything between '://' and the last '@', where a password would be.
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}" if "@" in rest else url


def scrub(message: str, url: str) -> str:
    """Remove the URL's password from a (driver) message."""
    parsed = _parsed_whole(url)
    if parsed is not None:
        password = parsed.password
    else:  # unparseable: whatever stands where a password would, between ':' and the last '@'
        match = re.search(r"://[^:/@]*:(.*)@", url)
        password = match.group(1) if match else None
    if password:
        message = message.replace(str(password), "***")
    return message
