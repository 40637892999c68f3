"""What `hpo k8s` renders: its options, checked when built, and Kubernetes-safe names.

Each check is one line naming the option. Object names derive from the study name, made
safe as DNS-1123 labels (a short hash when altered).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hpo.errors import HpoError

Manifest = dict[str, Any]

PROXY_NAME = "hpo-proxy"
PROXY_PORT = 13000
PROXY_URL = f"grpc://{PROXY_NAME}:{PROXY_PORT}"  # the only storage workers and launch see
DASHBOARD_NAME = "hpo-dashboard"
DASHBOARD_PORT = 8080
POSTGRES_NAME = "hpo-postgres"
POSTGRES_PORT = 5432
POSTGRES_USER = "hpo"
POSTGRES_DB = "hpo"
ARTIFACTS_CLAIM = "hpo-artifacts"
ARTIFACTS_PATH = "/artifacts"
STUDY_PATH = "/study"  # the ConfigMap with the study file, in the launch Job
DATA_PATH = "/data"  # the optional data volume, read-only in the workers
SECRET_URL_KEY = "url"  # key of the database URL in the user's Secret
SECRET_PASSWORD_KEY = "password"  # key of the PostgreSQL password (in-cluster database)
HPO_UID = 1000  # the user of the Dockerfile's image

MIN_GRACE_SECONDS = 60  # shortest stop grace for a worker: finish the epoch, checkpoint, re-queue
DEFAULT_GRACE_SECONDS = 600
MAX_GRACE_SECONDS = 86_400
MAX_WORKERS = 10_000  # a worker pod's host name, JOB-INDEX, stays within 63 characters
MAX_GPUS_PER_WORKER = 16
MAX_WORKERS_PER_GPU = 32
MAX_NAME_LENGTH = 128  # of a study name, as hpo's study files allow
MAX_STUDY_BYTES = 512 * 1024  # a ConfigMap holds at most 1 MiB in all
SLUG_LENGTH = 40  # of the study's part in object names: "hpo-" + slug + "-workers-9999" <= 63
INDEX_STRIDE_DIGITS = 3  # worker index = pod index * 1000 + process, when a pod runs several

ARTIFACTS_FILE = "10-artifacts.yaml"
POSTGRES_FILE = "20-postgres.yaml"
PROXY_FILE = "30-proxy.yaml"
NETWORK_FILE = "35-network-policy.yaml"
DASHBOARD_FILE = "40-dashboard.yaml"
LAUNCH_FILE = "50-launch.yaml"
WORKERS_FILE = "60-workers.yaml"
NOTES_FILE = "README.txt"
# Every file this module may write: `force` removes the ones a new run does not rewrite.
ALL_FILES = (
    ARTIFACTS_FILE,
    POSTGRES_FILE,
    PROXY_FILE,
    NETWORK_FILE,
    DASHBOARD_FILE,
    LAUNCH_FILE,
    WORKERS_FILE,
    NOTES_FILE,
)

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,511}")
_QUANTITY = re.compile(r"[1-9][0-9]{0,8}(\.[0-9]{1,3})?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?")
_CONFIG_KEY = re.compile(r"[A-Za-z0-9][-._A-Za-z0-9]{0,200}\.toml")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# Init container of every worker: wait until the launch Job has created the study, so that
# workers do not spend the Job's backoffLimit failing on a study that is not there yet. It
# talks to the proxy with Optuna's own client; the study name comes from the environment.
WAIT_FOR_STUDY = """\
import os, time
from urllib.parse import urlsplit
from optuna.storages import GrpcStorageProxy
url = urlsplit(os.environ["HPO_STORAGE"])
storage = GrpcStorageProxy(host=url.hostname, port=url.port)
name = os.environ["WAIT_FOR_STUDY"]
while True:
    try:
        storage.get_study_id_from_name(name)
        break
    except KeyError:
        print("waiting for the launch job to create the study", flush=True)
    except Exception as exc:
        print(f"waiting for the storage proxy ({type(exc).__name__})", flush=True)
    time.sleep(5)
"""


@dataclass(frozen=True)
class KubernetesOptions:
    """What `hpo k8s` renders; checked when built, each error one line naming the option."""

    study_file_name: str  # base name of the study file, its key in the ConfigMap
    study_text: str  # the study file (TOML), copied verbatim into the ConfigMap
    study_name: str  # the study's name in the storage (study.name, or --name)
    workers: int  # pods of the Indexed Job, one `hpo worker` each
    image: str  # the hpo image (Dockerfile), for every hpo container
    gpus_per_worker: int = 0  # nvidia.com/gpu of each worker pod; 0: CPU workers
    workers_per_gpu: int = 1  # worker processes per GPU in a pod (`--workers-per-gpu`)
    trials: int | None = None  # study-wide budget for the launch; None: the study file's
    namespace: str = "default"  # of every object; the user creates it (and the Secret in it)
    database: Literal["postgres", "external"] = "postgres"  # in-cluster StatefulSet, or a URL
    db_secret: str = "hpo-db"  # the user's Secret: key `url`, and `password` for postgres
    postgres_image: str = "postgres:15"  # as docker-compose.yml
    postgres_storage: str = "10Gi"  # the database's volume (ReadWriteOnce, default class)
    artifacts_storage: str = "50Gi"  # the shared artifacts volume (ReadWriteMany)
    storage_class: str | None = None  # class of the artifacts volume; None: cluster default
    data_claim: str | None = None  # an existing PVC with data files, read-only at /data
    grace_seconds: int = DEFAULT_GRACE_SECONDS  # a stopped worker's time to end its epoch
    cpus_per_worker: int | None = None  # CPU request (and torch threads of a CPU worker)
    memory_per_worker: str | None = None  # memory request = limit of a worker pod, e.g. 8Gi
    restarts_per_worker: int = 6  # the workers Job's backoffLimit is workers times this
    network_policies: bool = True  # only hpo pods reach the proxy, only it and dashboard the db

    def __post_init__(self) -> None:
        check_options(self)


# ---------------------------------------------------------------- names


def dns_label_part(name: str, max_length: int = SLUG_LENGTH) -> str:
    """`name` as part of a DNS-1123 label: lowercase letters, digits and hyphens, at most
    `max_length` characters; a name that had to be changed gets a hash of the original,
    so that two different names never map to the same objects."""
    lowered = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if lowered == name and len(name) <= max_length:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    base = lowered[: max_length - len(digest) - 1].strip("-")
    return f"{base}-{digest}" if base else digest


def study_slug(options: KubernetesOptions) -> str:
    """The study's part in the names of its own objects."""
    return dns_label_part(options.study_name)


def config_key(file_name: str) -> str:
    """The study file's key in the ConfigMap (and its name under /study): its base name
    when that is a valid key, else `study.toml`."""
    return file_name if _CONFIG_KEY.fullmatch(file_name) else "study.toml"


# ---------------------------------------------------------------- checks


def check_options(options: KubernetesOptions) -> None:
    """HpoError with one line for the first option that is not allowed."""
    _check_int("--workers", options.workers, 1, MAX_WORKERS)
    _check_int("--gpus-per-worker", options.gpus_per_worker, 0, MAX_GPUS_PER_WORKER)
    _check_int("--workers-per-gpu", options.workers_per_gpu, 1, MAX_WORKERS_PER_GPU)
    if options.workers_per_gpu > 1 and options.gpus_per_worker == 0:
        raise HpoError(
            "--workers-per-gpu needs --gpus-per-worker >= 1 (CPU workers: raise --workers)"
        )
    if options.trials is not None:
        _check_int("--trials", options.trials, 1, 10_000_000)
    _check_int("--grace-seconds", options.grace_seconds, MIN_GRACE_SECONDS, MAX_GRACE_SECONDS)
    _check_int("--restarts-per-worker", options.restarts_per_worker, 0, 100)
    if options.cpus_per_worker is not None:
        _check_int("--cpus-per-worker", options.cpus_per_worker, 1, 1024)
    check_study_name(options.study_name)
    if not isinstance(options.study_text, str) or not options.study_text.strip():
        raise HpoError("the study file is empty")
    size = len(options.study_text.encode())
    if size > MAX_STUDY_BYTES:
        raise HpoError(
            f"the study file is {size} bytes; a ConfigMap holds at most {MAX_STUDY_BYTES}"
        )
    if not isinstance(options.study_file_name, str) or not options.study_file_name:
        raise HpoError("the study file needs a name")
    for label, image in (("--image", options.image), ("--postgres-image", options.postgres_image)):
        if not isinstance(image, str) or not _IMAGE.fullmatch(image):
            raise HpoError(
                f"{label} {_shown(image)} is not an image reference: letters, digits and ._/:@+- "
                "only, no spaces, like registry.example.com/hpo:1.0"
            )
    _check_name("--namespace", options.namespace, _DNS_LABEL, 63)
    _check_name("--db-secret", options.db_secret, _DNS_SUBDOMAIN, 253)
    if options.storage_class is not None:
        _check_name("--storage-class", options.storage_class, _DNS_SUBDOMAIN, 253)
    if options.data_claim is not None:
        _check_name("--data-claim", options.data_claim, _DNS_SUBDOMAIN, 253)
    if options.database not in ("postgres", "external"):
        raise HpoError(f"--database {_shown(options.database)}: choose postgres or external")
    for label, quantity in (
        ("--postgres-storage", options.postgres_storage),
        ("--artifacts-storage", options.artifacts_storage),
        ("--memory-per-worker", options.memory_per_worker),
    ):
        if quantity is not None and not (
            isinstance(quantity, str) and _QUANTITY.fullmatch(quantity)
        ):
            raise HpoError(f"{label} {_shown(quantity)} is not a size like 512Mi, 8Gi or 1Ti")


def check_study_name(name: object) -> None:
    """A study name as hpo's study files allow it, without control characters."""
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise HpoError(f"study name {_shown(name)}: a non-empty name without surrounding spaces")
    if len(name) > MAX_NAME_LENGTH:
        raise HpoError(f"study name is {len(name)} characters; at most {MAX_NAME_LENGTH}")
    if _CONTROL.search(name):
        raise HpoError(f"study name {_shown(name)} has control characters")


def _check_int(label: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise HpoError(f"{label} must be an integer from {low} to {high}, got {_shown(value)}")


def _check_name(label: str, value: object, pattern: re.Pattern[str], limit: int) -> None:
    if not isinstance(value, str) or len(value) > limit or not pattern.fullmatch(value):
        raise HpoError(
            f"{label} {_shown(value)} is not a Kubernetes name: lowercase letters, digits and "
            f"hyphens, starting and ending with a letter or digit, at most {limit} characters"
        )


def _shown(value: object) -> str:
    """A value in an error line: repr (control characters escaped), cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ---------------------------------------------------------------- the study file


def options_from_file(
    file: str | Path, *, name: str | None = None, **fields: Any
) -> KubernetesOptions:
    """Options for the study file `file`: its text, base name and study name (or `name`,
    as `hpo launch study --name`). Only study.name is read here; the launch Job checks the
    whole file in the cluster, so callers that can should check it before."""
    path = Path(file)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise HpoError(f"cannot read the study file {str(path)!r}: {exc.strerror}") from None
    if len(raw) > MAX_STUDY_BYTES:
        raise HpoError(
            f"{path.name}: {len(raw)} bytes; a ConfigMap holds at most {MAX_STUDY_BYTES}"
        )
    try:
        text = raw.decode()
        table = tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        reason = " ".join(str(exc).split())
        raise HpoError(f"{path.name} is not a TOML study file: {reason}") from None
    if name is None:
        study = table.get("study")
        found = study.get("name") if isinstance(study, dict) else None
        if not isinstance(found, str) or not found.strip():
            raise HpoError(f"{path.name}: study.name is required (or pass --name)")
        name = found.strip()
    return KubernetesOptions(study_file_name=path.name, study_text=text, study_name=name, **fields)
