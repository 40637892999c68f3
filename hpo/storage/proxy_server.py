"""`hpo proxy`: Optuna's gRPC storage proxy in front of the database, plus hpo's calls.

Large fleets talk to one proxy instead of to PostgreSQL: the proxy holds a small pool of
database connections and every worker one gRPC channel, so the database's connection limit
no longer bounds the fleet. The proxy serves Optuna's storage service (trials, attrs,
states: a claim is the same atomic WAITING -> RUNNING transition in the database) plus
hpo's own calls (`hpo.Proxy`, hpo.storage.proxy_client): `Ping`, and the study operations
it is given (hpo.storage.locks.LockedCall: the study layer's open and top-up), each run
under the study lock on the proxy's database, so the budget stays exact however many
workers share the proxy.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Set before grpc is first imported: its C core would print its own lines (a failed bind)
# beside hpo's one-line errors.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc
import optuna

from hpo.errors import HpoError, StorageError
from hpo.storage import _optuna
from hpo.storage.locks import LockedCall, Request
from hpo.storage.proxy_client import SERVICE, decode_message, encode_message
from hpo.storage.rdb import open_database
from hpo.storage.urls import PROXY_SCHEME, TLS_PROXY_SCHEME, is_proxy_url, mask_url, url_host

THREADS = 8  # calls the proxy serves at once; its database pool is one larger
STOP_GRACE_SECONDS = 5.0  # calls in flight get this long to finish on SIGTERM / Ctrl-C

log = logging.getLogger("hpo.storage.proxy_server")


def serve_proxy(
    storage_url: str,
    *,
    host: str,
    port: int,
    heartbeat_interval: int,
    on_ready: Callable[[str], None],
    calls: Sequence[LockedCall],
    stop: threading.Event | None = None,
    threads: int = THREADS,
    tls: ServerTls | None = None,
) -> None:
    """Serve the proxy in front of `storage_url` until `stop` is set (or SIGTERM / SIGINT,
    when called from the main thread); `on_ready` gets the grpc:// URL once it listens
    (grpcs:// with `tls`). `calls` are the study operations clients may run here
    (hpo.study.create.LOCKED_CALLS).
    """
    if is_proxy_url(storage_url):
        raise StorageError(
            f"hpo proxy serves a database, not another proxy ({mask_url(storage_url)}); pass the "
            "database's URL: --storage postgresql://USER@HOST/DB (or sqlite:///FILE)"
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # hpo reports for itself
    # One connection per serving thread, and one more for a study lock held by a top-up
    # while its statements run: no call ever waits for a pooled connection.
    storage = open_database(
        storage_url, heartbeat_interval=heartbeat_interval, pool_size=threads + 1
    )
    cached = _optuna.cached_storage(storage)  # Optuna's per-process trial cache, as advised
    server = grpc.server(ThreadPoolExecutor(max_workers=threads, thread_name_prefix="proxy"))
    _optuna.add_storage_service(server, cached)
    server.add_generic_rpc_handlers((_hpo_handler(storage, calls),))
    address = f"{url_host(host)}:{port}"
    try:
        if tls is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, tls.credentials())
    except RuntimeError:
        bound = 0
    if not bound:
        storage.engine.dispose()
        raise StorageError(
            f"cannot listen on {url_host(host)}:{port} (in use, or not an address of this "
            "machine); pick another --port or --host"
        )
    stop = stop or threading.Event()
    restore = _stop_on_signals(stop)
    server.start()
    try:
        scheme = PROXY_SCHEME if tls is None else TLS_PROXY_SCHEME
        on_ready(f"{scheme}://{url_host(host)}:{bound}")
        log.info("proxy for %s on %s:%d", mask_url(storage.url), url_host(host), bound)
        stop.wait()
    finally:
        server.stop(STOP_GRACE_SECONDS).wait()
        storage.engine.dispose()
        restore()


@dataclass(frozen=True)
class ServerTls:
    """The proxy's TLS: its key and certificate (PEM), and, for mutual TLS, the CA whose
    certificates clients must present (then a client without one is refused)."""

    private_key: bytes
    certificate_chain: bytes
    client_ca: bytes | None = None

    @classmethod
    def read(cls, cert: str, key: str, client_ca: str | None) -> ServerTls:
        """From PEM files; HpoError with one line naming a file that is not PEM."""
        pem = {path: Path(path).read_bytes() for path in (cert, key, client_ca) if path}
        for path, data in pem.items():
            if b"-----BEGIN " not in data:
                raise HpoError(f"{path} is not a PEM file (expected -----BEGIN ...)")
        return cls(pem[key], pem[cert], pem[client_ca] if client_ca else None)

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.private_key, self.certificate_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )


def _stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """Set `stop` on SIGTERM and SIGINT (main thread only); returns what restores them."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def _hpo_handler(storage: Any, calls: Sequence[LockedCall]) -> grpc.GenericRpcHandler:
    """hpo's calls: JSON in, JSON out; user errors travel as FAILED_PRECONDITION."""

    def ping(request: Request) -> Request:
        return {"storage": mask_url(storage.url)}

    def serve(call: Callable[[Request], Request]) -> grpc.RpcMethodHandler:
        def handle(request: Request, context: grpc.ServicerContext) -> Request:
            try:
                return call(request)
            except KeyError as exc:
                context.abort(grpc.StatusCode.NOT_FOUND, f"no such study: {exc}")
            except StorageError as exc:  # not UNAVAILABLE: the client would retry it again
                context.abort(grpc.StatusCode.INTERNAL, str(exc))
            except HpoError as exc:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
            raise AssertionError("unreachable: abort raises")

        return grpc.unary_unary_rpc_method_handler(
            handle, request_deserializer=decode_message, response_serializer=encode_message
        )

    def locked(call: LockedCall) -> Callable[[Request], Request]:
        return lambda request: storage.run_locked(call, request)

    handlers = {"Ping": ping, **{call.name: locked(call) for call in calls}}
    return grpc.method_handlers_generic_handler(
        SERVICE, {name: serve(handler) for name, handler in handlers.items()}
    )
