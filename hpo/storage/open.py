"""Storage URL -> storage: one table from URL scheme to opener, the one transport decision.

`sqlite:///FILE` and `postgresql://...` open a database (hpo.storage.rdb); `grpc://HOST:PORT`
(`grpcs://` over TLS) a client of `hpo proxy` (hpo.storage.proxy_client). Both offer the
same interface to the layers above (Optuna's storage calls, `run_locked`,
`heartbeat_interval`), so nothing above this module asks which kind it has. The proxy
client (and grpc) load only for grpc:// and grpcs:// URLs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hpo.config.settings import HEARTBEAT_INTERVAL, Settings
from hpo.storage.retry import retry_seconds
from hpo.storage.urls import PROXY_SCHEME, TLS_PROXY_SCHEME

if TYPE_CHECKING:  # annotations only: the proxy client loads grpc
    from hpo.storage.proxy_client import ProxyStorage
    from hpo.storage.rdb import ResilientRDBStorage

    Storage = ResilientRDBStorage | ProxyStorage


def _open_database(url: str, **options: Any) -> ResilientRDBStorage:
    from hpo.storage.rdb import open_database

    return open_database(url, **options)


def _open_proxy(url: str, *, heartbeat_interval: int, **_database_only: Any) -> ProxyStorage:
    from hpo.storage.proxy_client import open_proxy

    return open_proxy(url, heartbeat_interval=heartbeat_interval, retry_seconds=retry_seconds())


# URL scheme -> opener; anything else is a database URL that rdb parses (or refuses).
OPENERS: dict[str, Callable[..., Storage]] = {
    PROXY_SCHEME: _open_proxy,
    TLS_PROXY_SCHEME: _open_proxy,
}


def open_storage(
    url: str,
    *,
    heartbeat_interval: int = HEARTBEAT_INTERVAL,
    grace_period: int | None = None,
    pool_size: int | None = None,
) -> Storage:
    """Connect to the storage at `url`; StorageError with one line if that fails.

    A trial whose worker stops sending heartbeats for `grace_period` seconds (default:
    twice the interval) is failed by the next worker that looks, and re-queued. `pool_size`
    raises a database's connection pool for the one process that serves many (`hpo proxy`).
    """
    scheme = url.strip().partition("://")[0].lower()
    opener = OPENERS.get(scheme, _open_database)
    return opener(
        url, heartbeat_interval=heartbeat_interval, grace_period=grace_period, pool_size=pool_size
    )


def connect(settings: Settings) -> Storage:
    """The storage of the shared options (--storage, --heartbeat), quiet about itself."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # hpo reports for itself
    return open_storage(settings.storage_url, heartbeat_interval=settings.heartbeat_interval)
