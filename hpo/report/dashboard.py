"""optuna-dashboard on the storage, with the artifact folder (`hpo dashboard`).

What a comparison puts there (notes, plots, report files) is hpo.compare.publish.

optuna-dashboard answers any request: on loopback, any web page the operator opens could
read or delete studies by DNS rebinding (a name of the attacker's that resolves to
127.0.0.1). `HostGuard` refuses, with 403, every request whose Host (or Origin, when a
browser sends one) is not a name of this dashboard; off loopback a token is required too.
"""

from __future__ import annotations

import hmac
import secrets
import socket
import socketserver
from collections.abc import Callable, Iterable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna
import optuna_dashboard
from optuna.artifacts import FileSystemArtifactStore

from hpo.errors import HpoError
from hpo.storage.urls import is_loopback, url_host

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")  # always allowed as Host / Origin
TOKEN_ENV = "HPO_DASHBOARD_TOKEN"
TOKEN_COOKIE = "hpo_dashboard_token"  # set once the token came in the URL
WILDCARDS = ("0.0.0.0", "::")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _name(host: str) -> str:
    """A host name or address compared as the guard compares them: lower case, no
    brackets around an IPv6 address."""
    return host.strip().strip("[]").lower()


def allowed_hosts(bound: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The names a request may address: the bound address, loopback's, and `extra`
    (--allow-host); on a wildcard bind also this machine's name."""
    names = {*LOOPBACK_NAMES, bound, *extra}
    if bound in WILDCARDS:
        names.add(socket.gethostname())
    return frozenset(_name(n) for n in names)


def request_host(header: str) -> str:
    """The host of a Host header (`name:port`, `[::1]:port`), without the port."""
    header = header.strip()
    if header.startswith("["):
        return _name(header.partition("]")[0])
    return _name(header.partition(":")[0])


def dashboard_token(host: str, token: str | None, *, no_token: bool) -> tuple[str | None, bool]:
    """The token requests must carry (None: none) and whether it was generated here.

    Off loopback one is required (generated, as Jupyter does, when none is given) unless
    `no_token`; on loopback only a given one is required.
    """
    if no_token and token:
        raise HpoError("--no-token and --token (or HPO_DASHBOARD_TOKEN) contradict each other")
    if token or no_token or is_loopback(host):
        return token or None, False
    return secrets.token_urlsafe(24), True


class HostGuard:
    """WSGI middleware: 403 for a foreign Host or Origin, or a missing token.

    The token may come as `?token=...` (then kept in an HttpOnly cookie, so the
    dashboard's own requests carry it), as that cookie, or as `Authorization: Bearer ...`.
    """

    def __init__(self, app: WSGIApp, allowed: frozenset[str], token: str | None = None) -> None:
        self.app = app
        self.allowed = allowed
        self.token = token

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        host = request_host(environ.get("HTTP_HOST", ""))
        origin = environ.get("HTTP_ORIGIN")
        if host not in self.allowed:
            return _refuse(start_response, f"Host {host!r} is not a name of this dashboard")
        if origin is not None and _name(urlsplit(origin).hostname or "") not in self.allowed:
            return _refuse(start_response, f"Origin {origin!r} is not this dashboard")
        if self.token is None:
            return self.app(environ, start_response)
        given = _query_token(environ)
        if given is not None and self._matches(given):
            return self.app(environ, _with_cookie(start_response, given))
        if self._matches(_cookie_token(environ) or _bearer_token(environ) or ""):
            return self.app(environ, start_response)
        return _refuse(start_response, "a token is required: open the URL hpo dashboard printed")

    def _matches(self, given: str) -> bool:
        assert self.token is not None
        return hmac.compare_digest(given.encode(), self.token.encode())


def _refuse(start_response: Callable[..., Any], why: str) -> list[bytes]:
    body = f"403 Forbidden: {why}\n".encode()
    start_response(
        "403 Forbidden",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


def _query_token(environ: dict[str, Any]) -> str | None:
    values = parse_qs(environ.get("QUERY_STRING", "")).get("token")
    return values[0] if values else None


def _cookie_token(environ: dict[str, Any]) -> str | None:
    cookie = SimpleCookie()
    try:
        cookie.load(environ.get("HTTP_COOKIE", ""))
    except Exception:  # a malformed cookie header is no token
        return None
    morsel = cookie.get(TOKEN_COOKIE)
    return morsel.value if morsel is not None else None


def _bearer_token(environ: dict[str, Any]) -> str | None:
    scheme, _, value = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _with_cookie(start_response: Callable[..., Any], token: str) -> Callable[..., Any]:
    def start(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
        cookie = f"{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
        return start_response(status, [*headers, ("Set-Cookie", cookie)], *exc_info)

    return start


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *_args: Any) -> None:  # no line per request
        pass


def _server_class(host: str) -> type[WSGIServer]:
    """A threaded WSGI server, on IPv6 when the address is one."""
    if ":" not in host:
        return _Server
    return type("_Server6", (_Server,), {"address_family": socket.AF_INET6})


def guarded_app(
    storage: optuna.storages.BaseStorage,
    *,
    host: str,
    artifact_dir: str | Path,
    allow_hosts: Iterable[str] = (),
    token: str | None = None,
) -> HostGuard:
    """optuna-dashboard's WSGI app on `storage` and the artifact folder, behind HostGuard."""
    Path(artifact_dir).mkdir(parents=True, exist_ok=True)
    app = optuna_dashboard.wsgi(storage, artifact_store=FileSystemArtifactStore(str(artifact_dir)))
    return HostGuard(app, allowed_hosts(host, allow_hosts), token)


def serve(
    storage: optuna.storages.BaseStorage,
    *,
    host: str,
    port: int,
    artifact_dir: str | Path,
    allow_hosts: Iterable[str] = (),
    token: str | None = None,
) -> None:
    """Run the guarded dashboard in this process until interrupted.

    In-process rather than the `optuna-dashboard` command: the storage URL (with any
    password) never appears on a command line, and our storage settings apply.
    """
    app = guarded_app(
        storage, host=host, artifact_dir=artifact_dir, allow_hosts=allow_hosts, token=token
    )
    try:
        server = make_server(
            host, port, app, server_class=_server_class(host), handler_class=_QuietHandler
        )
    except OSError as exc:
        raise HpoError(
            f"cannot listen on {url_host(host)}:{port}: {exc.strerror or exc}; pick another "
            "--port or --host"
        ) from None
    with server:
        server.serve_forever()
