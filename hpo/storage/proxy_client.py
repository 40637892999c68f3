"""The client of `hpo proxy` (Optuna's gRPC storage proxy plus hpo's calls): grpc:// URLs.

Large fleets talk to one proxy instead of to PostgreSQL (hpo.storage.proxy_server). A worker
behind it has no SQL session, so the study operations that run under the study lock
(hpo.storage.locks.LockedCall: open a study, top up its queue) run on the proxy's side;
`Ping` checks at connection time that the server is an hpo proxy.

Heartbeats: Optuna's client has none, so workers behind the proxy beat through a trial
system attr and judge silence on their own clock (hpo.storage.heartbeats.AttrHeartbeats).

A storage URL `grpc://HOST:PORT` names a proxy; `grpcs://HOST:PORT` one that serves TLS
(`hpo proxy --tls-cert ... --tls-key ...`), trusted through HPO_TLS_CA (the CA file that
signed the proxy's certificate; the system's roots when unset) and, where the proxy asks
for client certificates (--tls-client-ca), presenting HPO_TLS_CERT and HPO_TLS_KEY. Every
call waits out a proxy that is restarting (UNAVAILABLE) for HPO_DB_RETRY_SECONDS, as calls
to the database do.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

# Set before grpc is first imported: its C core would print its own lines (a failed bind,
# a refused connection) beside hpo's one-line errors.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc
import optuna
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from hpo.errors import HpoError, StorageError
from hpo.storage._optuna import FIXED_PARAMS, proxy_client_parts, trial_id
from hpo.storage.locks import LockedCall, Request
from hpo.storage.retry import STORAGE_CALLS, retrying
from hpo.storage.stale import MAX_RETRY, StaleTrialRetry
from hpo.storage.urls import PROXY_SCHEME, TLS_PROXY_SCHEME, mask_url, url_host

DEFAULT_PORT = 13000  # Optuna's default for its proxy
CONNECT_SECONDS = 5.0  # how long a client waits for a proxy at start-up before one line
SERVICE = "hpo.Proxy"  # hpo's own calls, beside Optuna's storage service
# The files a TLS client reads: the CA to trust, and its own certificate and key (mutual TLS).
TLS_FILES = {
    "root_certificates": "HPO_TLS_CA",
    "certificate_chain": "HPO_TLS_CERT",
    "private_key": "HPO_TLS_KEY",
}
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", -1)]  # as Optuna's own channel

log = logging.getLogger("hpo.storage.proxy_client")
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
            f"malformed proxy URL {mask_url(url)!r}; expected grpc://HOST:PORT (grpcs:// for "
            f"TLS), e.g. grpc://127.0.0.1:{DEFAULT_PORT} (the address `hpo proxy` printed when it "
            "started)"
        )
    return url_host(parsed.host), port  # Optuna's client joins them as host:port


def uses_tls(url: str) -> bool:
    return url.strip().lower().startswith(f"{TLS_PROXY_SCHEME}://")


def tls_credentials() -> grpc.ChannelCredentials:
    """A TLS client's credentials from HPO_TLS_CA / HPO_TLS_CERT / HPO_TLS_KEY (each a file);
    StorageError with one line naming the variable if one cannot be read."""
    pem: dict[str, bytes | None] = {}
    for argument, variable in TLS_FILES.items():
        path = os.environ.get(variable, "").strip()
        try:
            pem[argument] = Path(path).read_bytes() if path else None
        except OSError as exc:
            raise StorageError(f"cannot read {variable}={path}: {exc.strerror}") from None
    if (pem["certificate_chain"] is None) != (pem["private_key"] is None):
        raise StorageError(
            "set both HPO_TLS_CERT and HPO_TLS_KEY (a client certificate), or neither"
        )
    return grpc.ssl_channel_credentials(**pem)


def _unavailable(exc: BaseException) -> bool:
    return isinstance(exc, grpc.RpcError) and exc.code() == grpc.StatusCode.UNAVAILABLE


def _retrying(method: Callable[..., _T], name: str) -> Callable[..., _T]:
    """Retry a call while the proxy is unreachable (restarting), with the loop the
    database's calls use (hpo.storage.retry.retrying)."""
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
    With `credentials`, every channel it opens is a TLS one.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        heartbeat_interval: int,
        stale_trial_callback: Callable[[optuna.Study, Any], None] | None = None,
        retry_seconds: float = 0.0,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.credentials = credentials  # before Optuna's __init__, which opens the channel
        with warnings.catch_warnings():  # experimental since Optuna 4.2; we rely on it
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(host=host, port=port)
        scheme = TLS_PROXY_SCHEME if credentials is not None else PROXY_SCHEME
        self.url = f"{scheme}://{host}:{port}"
        self.heartbeat_interval = heartbeat_interval
        self.stale_trial_callback = stale_trial_callback
        self.retry_seconds = retry_seconds

    def open_channel(self) -> grpc.Channel:
        target = f"{self._host}:{self._port}"
        if self.credentials is None:
            return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        return grpc.secure_channel(target, self.credentials, options=CHANNEL_OPTIONS)

    def _setup(self) -> None:
        """Optuna's client on hpo's channel (TLS or not); also runs after unpickling."""
        self._channel = self.open_channel()
        self._stub, self._cache = proxy_client_parts(self._channel)

    def wait_server_ready(self, timeout: float | None = None) -> None:
        try:
            with self.open_channel() as channel:
                grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError as exc:
            raise ConnectionError("gRPC connection timeout") from exc

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
        with self.open_channel() as channel:
            stub = channel.unary_unary(
                f"/{SERVICE}/{method}",
                request_serializer=encode_message,
                response_deserializer=decode_message,
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

    def waiting_trial_ids(self, study_id: int) -> tuple[list[int], list[int]]:
        """Ids of the study's queued trials, (with fixed params, the others), each in number
        order (the proxy has no SQL read)."""
        waiting = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,))
        ordered = sorted(waiting, key=lambda t: t.number)
        fixed = [trial_id(t) for t in ordered if FIXED_PARAMS in t.system_attrs]
        return fixed, [trial_id(t) for t in ordered if FIXED_PARAMS not in t.system_attrs]

    def run_locked(self, call: LockedCall, request: Request) -> Request:
        """Run a study operation on the proxy, under the study's lock there."""
        return self.hpo_call(call.name, request)


for _name in (*STORAGE_CALLS, "run_locked"):
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
        credentials=tls_credentials() if uses_tls(url) else None,
    )
    try:
        storage.wait_server_ready(timeout=CONNECT_SECONDS)
    except ConnectionError:
        storage.close()
        tls = (
            "; over TLS: check that HPO_TLS_CA names the CA that signed the proxy's certificate "
            "(and HPO_TLS_CERT/HPO_TLS_KEY where it asks for a client certificate)"
            if storage.credentials is not None
            else "; a proxy started with --tls-cert takes grpcs:// URLs"
        )
        raise StorageError(
            f"cannot reach storage proxy {storage.url}: nothing answered within "
            f"{CONNECT_SECONDS:g} s; check the host and port, and that `hpo proxy` runs there "
            f"and is reachable from this machine{tls}"
        ) from None
    # Ping once, without retries: a server that answers but is not hpo's proxy says so now.
    storage.hpo_call("Ping", {})
    return storage


def encode_message(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def decode_message(data: bytes) -> dict[str, Any]:
    return json.loads(data.decode())
