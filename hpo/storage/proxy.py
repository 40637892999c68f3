"""Optuna's gRPC storage proxy in front of the database (`hpo proxy`), and its client.

Large fleets talk to one proxy instead of to PostgreSQL: the proxy holds a small pool of
database connections and every worker one gRPC channel, so the database's connection limit
no longer bounds the fleet. The proxy serves Optuna's storage service (trials, attrs,
states: a claim is the same atomic WAITING -> RUNNING transition in the database) plus
three calls of hpo's own (`hpo.Proxy`), because a worker behind it has no SQL session:

- OpenStudy: create or resume a study, under the study lock, with the same spec check;
- TopUp: queue trials up to the study's budget under the study lock (hpo.study.create.top_up),
  so the budget stays exact however many workers share the proxy;
- Ping: check that the server is an hpo proxy, at connection time.

Heartbeats: Optuna's client has none, so workers behind the proxy beat through a trial
system attr and judge silence on their own clock (hpo.storage.heartbeats.AttrHeartbeats).

A storage URL `grpc://HOST:PORT` names a proxy. Every call waits out a proxy that is
restarting (UNAVAILABLE) for HPO_DB_RETRY_SECONDS, as calls to the database do.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

# Set before grpc is first imported: its C core would print its own lines (a failed bind,
# a refused connection) beside hpo's one-line errors.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc
import optuna
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from hpo.errors import HpoError, StorageError
from hpo.storage.rdb import MAX_RETRY, STORAGE_CALLS, StaleTrialRetry, open_storage, retrying
from hpo.storage.urls import PROXY_SCHEME, is_proxy_url, mask_url

DEFAULT_PORT = 13000  # Optuna's default for its proxy
CONNECT_SECONDS = 5.0  # how long a client waits for a proxy at start-up before one line
THREADS = 8  # calls the proxy serves at once; its database pool is one larger
SERVICE = "hpo.Proxy"  # hpo's own calls, beside Optuna's storage service
STOP_GRACE_SECONDS = 5.0  # calls in flight get this long to finish on SIGTERM / Ctrl-C

log = logging.getLogger("hpo.storage.proxy")
_T = TypeVar("_T")


def parse_proxy_url(url: str) -> tuple[str, int]:
    """(host, port) of `grpc://HOST[:PORT]`; StorageError with one line if malformed."""
    try:
        parsed = make_url(url.strip())
        port = parsed.port or DEFAULT_PORT
    except Exception:  # SQLAlchemy raises ArgumentError, or ValueError for a bad port
        parsed, port = None, 0
    extra = parsed is not None and (parsed.database or parsed.username or parsed.query)
    if parsed is None or not parsed.host or extra or not 0 < port < 65536:
        raise StorageError(
            f"malformed proxy URL {url!r}; expected grpc://HOST:PORT, e.g. grpc://127.0.0.1:"
            f"{DEFAULT_PORT} (the address `hpo proxy` printed when it started)"
        )
    return parsed.host, port


# ---------------------------------------------------------------- client


def _unavailable(exc: BaseException) -> bool:
    return isinstance(exc, grpc.RpcError) and exc.code() == grpc.StatusCode.UNAVAILABLE


def _retrying(method: Callable[..., _T], name: str) -> Callable[..., _T]:
    """Retry a call while the proxy is unreachable (restarting), with the loop the
    database's calls use (hpo.storage.rdb.retrying)."""
    return retrying(method, name, retryable=_unavailable, give_up=_gave_up, warn=_warn)


def _gave_up(proxy: ProxyStorage, exc: BaseException) -> str:
    assert isinstance(exc, grpc.RpcError)  # retryable only when it is one (_unavailable)
    return (
        f"storage proxy {proxy.url} unreachable for {proxy.retry_seconds:g} s "
        f"({_details(exc)}); check that `hpo proxy` runs there"
    )


def _warn(_proxy: ProxyStorage, name: str, _exc: BaseException, delay: float) -> None:
    log.warning("storage proxy unreachable during %s; retrying in %.1f s", name, delay)


def _details(exc: grpc.RpcError) -> str:
    text = (exc.details() or exc.code().name).strip()
    return text.splitlines()[0] if text else exc.code().name


class ProxyStorage(optuna.storages.GrpcStorageProxy):
    """Optuna's gRPC storage client, with hpo's heartbeat settings, retries and calls.

    `heartbeat_interval` makes hpo.storage.heartbeats choose the attr heartbeat for it, and
    `stale_trial_callback` re-queues what that finds stale, as RDBStorage's callback does.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        heartbeat_interval: int,
        stale_trial_callback: Callable[[optuna.Study, Any], None] | None = None,
        retry_seconds: float = 0.0,
    ) -> None:
        with warnings.catch_warnings():  # experimental since Optuna 4.2; we rely on it
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(host=host, port=port)
        self.url = f"{PROXY_SCHEME}://{host}:{port}"
        self.heartbeat_interval = heartbeat_interval
        self.stale_trial_callback = stale_trial_callback
        self.retry_seconds = retry_seconds

    def _already_set(self, trial_id: int, state: TrialState, values: Any = None) -> bool | None:
        """After a lost answer: True if the trial is already in `state` (with `values`)."""
        stored = optuna.storages.GrpcStorageProxy.get_trial(self, trial_id)
        if stored.state != state or state == TrialState.RUNNING:
            return None  # a claim: cannot tell ours from another's (it goes stale if ours)
        if values is not None and list(stored.values or []) != list(values):
            return None
        return True

    def hpo_call(self, method: str, request: dict[str, Any]) -> dict[str, Any]:
        """One of hpo's calls on the proxy; HpoError with the proxy's line if refused."""
        with grpc.insecure_channel(f"{self._host}:{self._port}") as channel:
            stub = channel.unary_unary(
                f"/{SERVICE}/{method}",
                request_serializer=_encode,
                response_deserializer=_decode,
            )
            try:
                return stub(request)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    raise StorageError(
                        f"{self.url} is a storage proxy without hpo's calls (a plain Optuna "
                        "proxy?); start the proxy with `hpo proxy --storage DATABASE-URL`"
                    ) from None
                if exc.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                    raise HpoError(_details(exc)) from None
                if exc.code() == grpc.StatusCode.INTERNAL:  # the database behind it is away
                    raise StorageError(_details(exc)) from None
                raise

    def open_study(self, spec: dict[str, Any], trials: int) -> int:
        """Create or resume a study on the proxy (under its study lock); trials queued."""
        return int(self.hpo_call("OpenStudy", {"spec": spec, "trials": trials})["waiting"])

    def top_up(self, study_name: str) -> int:
        """Queue trials up to the budget on the proxy (under its study lock); how many wait."""
        return int(self.hpo_call("TopUp", {"study": study_name})["waiting"])


for _name in (
    *STORAGE_CALLS,
    "open_study",
    "top_up",
):
    setattr(ProxyStorage, _name, _retrying(getattr(ProxyStorage, _name), _name))


def open_proxy(url: str, *, heartbeat_interval: int, retry_seconds: float) -> ProxyStorage:
    """Connect to `hpo proxy` at `url`; StorageError with one line within CONNECT_SECONDS if
    nothing answers there, or if what answers is not an hpo proxy."""
    host, port = parse_proxy_url(url)
    storage = ProxyStorage(
        host=host,
        port=port,
        heartbeat_interval=heartbeat_interval,
        stale_trial_callback=StaleTrialRetry(max_retry=MAX_RETRY),
        retry_seconds=retry_seconds,
    )
    try:
        storage.wait_server_ready(timeout=CONNECT_SECONDS)
    except ConnectionError:
        storage.close()
        raise StorageError(
            f"cannot reach storage proxy {storage.url}: nothing answered within "
            f"{CONNECT_SECONDS:g} s; check the host and port, and that `hpo proxy` runs there "
            "and is reachable from this machine"
        ) from None
    # Ping once, without retries: a server that answers but is not hpo's proxy says so now.
    storage.hpo_call("Ping", {})
    return storage


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def _decode(data: bytes) -> dict[str, Any]:
    return json.loads(data.decode())


# ---------------------------------------------------------------- server


def serve_proxy(
    storage_url: str,
    *,
    host: str,
    port: int,
    heartbeat_interval: int,
    on_ready: Callable[[str], None],
    stop: threading.Event | None = None,
    threads: int = THREADS,
) -> None:
    """Serve the proxy in front of `storage_url` until `stop` is set (or SIGTERM / SIGINT,
    when called from the main thread); `on_ready` gets the grpc:// URL once it listens."""
    from hpo.storage import _optuna

    if is_proxy_url(storage_url):
        raise StorageError(
            f"hpo proxy serves a database, not another proxy ({storage_url}); pass the "
            "database's URL: --storage postgresql://USER@HOST/DB (or sqlite:///FILE)"
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # hpo reports for itself
    # One connection per serving thread, and one more for a study lock held by a top-up
    # while its statements run: no call ever waits for a pooled connection.
    storage = open_storage(
        storage_url, heartbeat_interval=heartbeat_interval, pool_size=threads + 1
    )
    cached = _optuna.cached_storage(storage)  # Optuna's per-process trial cache, as advised
    server = grpc.server(ThreadPoolExecutor(max_workers=threads, thread_name_prefix="proxy"))
    _optuna.add_storage_service(server, cached)
    server.add_generic_rpc_handlers((_hpo_handler(storage, cached),))
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:
        bound = 0
    if not bound:
        storage.engine.dispose()
        raise StorageError(
            f"cannot listen on {host}:{port} (in use, or not an address of this machine); "
            "pick another --port or --host"
        )
    stop = stop or threading.Event()
    restore = _stop_on_signals(stop)
    server.start()
    try:
        on_ready(f"{PROXY_SCHEME}://{host}:{bound}")
        log.info("proxy for %s on %s:%d", mask_url(storage.url), host, bound)
        stop.wait()
    finally:
        server.stop(STOP_GRACE_SECONDS).wait()
        storage.engine.dispose()
        restore()


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


def _hpo_handler(storage: Any, cached: Any) -> grpc.GenericRpcHandler:
    """hpo's calls: JSON in, JSON out; user errors travel as FAILED_PRECONDITION."""
    from hpo.config.spec import spec_from_dict
    from hpo.study.create import open_study, top_up

    def ping(request: dict[str, Any]) -> dict[str, Any]:
        return {"storage": mask_url(storage.url)}

    def open_(request: dict[str, Any]) -> dict[str, Any]:
        spec = spec_from_dict(request["spec"], source="spec sent to the proxy")
        study = open_study(storage, spec, trials=request["trials"])
        return {"waiting": len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))}

    def top_up_(request: dict[str, Any]) -> dict[str, Any]:
        sampler = optuna.samplers.RandomSampler()  # never used: the study only queues trials
        study = optuna.load_study(study_name=request["study"], storage=cached, sampler=sampler)
        return {"waiting": top_up(study, storage)}

    def serve(call: Callable[[dict[str, Any]], dict[str, Any]]) -> grpc.RpcMethodHandler:
        def handle(request: dict[str, Any], context: grpc.ServicerContext) -> dict[str, Any]:
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
            handle, request_deserializer=_decode, response_serializer=_encode
        )

    calls = {"Ping": ping, "OpenStudy": open_, "TopUp": top_up_}
    return grpc.method_handlers_generic_handler(
        SERVICE, {name: serve(call) for name, call in calls.items()}
    )
