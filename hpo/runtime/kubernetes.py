"""Kubernetes manifests for one study (`hpo k8s FILE`): the docker-compose.yml layout on a
cluster.

PostgreSQL (or an existing database), the gRPC storage proxy in front of it, a one-shot
Job that creates the study through the proxy, an Indexed Job of N workers that talk to the
proxy only, a ReadWriteMany volume for the artifacts and optuna-dashboard behind a
ClusterIP Service. The database URL and password live only in a Secret the user creates:
nothing here reads, writes or prints them.

Shared objects (proxy, dashboard, database, artifacts volume) have fixed names, so several
studies can share them in one namespace; the study's own objects are named after the study
(`hpo-NAME-launch`, `hpo-NAME-workers`), made safe as Kubernetes names.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

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


# ---------------------------------------------------------------- manifests


def render_manifests(options: KubernetesOptions) -> dict[str, list[Manifest]]:
    """File name -> the Kubernetes objects it holds, in the order `kubectl apply -f DIR`
    creates them. Pure: the same options give the same objects."""
    files: dict[str, list[Manifest]] = {}
    files[ARTIFACTS_FILE] = [_artifacts_claim(options)]
    if options.database == "postgres":
        files[POSTGRES_FILE] = [_postgres_service(options), _postgres(options)]
    files[PROXY_FILE] = [_proxy_service(options), _proxy(options)]
    if options.network_policies:
        files[NETWORK_FILE] = _network_policies(options)
    files[DASHBOARD_FILE] = [_dashboard_service(options), _dashboard(options)]
    files[LAUNCH_FILE] = [_study_config(options), _launch_job(options)]
    files[WORKERS_FILE] = [_workers_job(options)]
    return files


def _labels(component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "hpo",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "hpo",
    }


def _selector(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "hpo", "app.kubernetes.io/component": component}


def _metadata(options: KubernetesOptions, name: str, component: str) -> Manifest:
    return {"name": name, "namespace": options.namespace, "labels": _labels(component)}


def _study_labels(options: KubernetesOptions, component: str) -> dict[str, str]:
    return {**_labels(component), "hpo/study": study_slug(options)}


def _study_metadata(options: KubernetesOptions, suffix: str, component: str) -> Manifest:
    metadata = _metadata(options, f"hpo-{study_slug(options)}-{suffix}", component)
    metadata["labels"] = _study_labels(options, component)
    # The name as given, for people: annotations hold any text, labels do not.
    metadata["annotations"] = {"hpo/study-name": options.study_name}
    return metadata


def _literal(text: str) -> str:
    """`text` safe in a container's command or env value, where Kubernetes expands
    $(VAR): `$$` stands for one `$`, so a study name like "$(HPO_STORAGE)" stays itself."""
    return text.replace("$", "$$")


def _env(name: str, value: str) -> Manifest:
    return {"name": name, "value": value}


def _secret_env(name: str, secret: str, key: str) -> Manifest:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _hpo_security() -> Manifest:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
    }


def _pod_spec(containers: list[Manifest], **more: Any) -> Manifest:
    """A pod of hpo containers: no API token (hpo never calls Kubernetes) and no service
    links, whose HPO_PROXY_PORT=tcp://... variables would reach click's HPO_ env options."""
    spec: Manifest = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsUser": HPO_UID,
            "runAsGroup": HPO_UID,
            "fsGroup": HPO_UID,
            "fsGroupChangePolicy": "OnRootMismatch",  # no recursive chown of big volumes
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    spec.update(more)
    spec["containers"] = containers
    return spec


def _artifacts_volume() -> Manifest:
    return {"name": "artifacts", "persistentVolumeClaim": {"claimName": ARTIFACTS_CLAIM}}


def _artifacts_mount() -> Manifest:
    return {"name": "artifacts", "mountPath": ARTIFACTS_PATH}


def _artifacts_claim(options: KubernetesOptions) -> Manifest:
    spec: Manifest = {
        "accessModes": ["ReadWriteMany"],  # every worker pod writes checkpoints, on any node
        "resources": {"requests": {"storage": options.artifacts_storage}},
    }
    if options.storage_class is not None:
        spec["storageClassName"] = options.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(options, ARTIFACTS_CLAIM, "artifacts"),
        "spec": spec,
    }


def _postgres_service(options: KubernetesOptions) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(options, POSTGRES_NAME, "postgres"),
        "spec": {
            "clusterIP": "None",  # headless: the StatefulSet's one pod by name
            "selector": _selector("postgres"),
            "ports": [{"name": "postgres", "port": POSTGRES_PORT, "targetPort": POSTGRES_PORT}],
        },
    }


def _postgres(options: KubernetesOptions) -> Manifest:
    data = "/var/lib/postgresql/data"
    container = {
        "name": "postgres",
        "image": options.postgres_image,
        "env": [
            _env("POSTGRES_USER", POSTGRES_USER),
            _env("POSTGRES_DB", POSTGRES_DB),
            _secret_env("POSTGRES_PASSWORD", options.db_secret, SECRET_PASSWORD_KEY),
            _env("PGDATA", f"{data}/pgdata"),  # a subfolder: a volume's root has lost+found
        ],
        "ports": [{"name": "postgres", "containerPort": POSTGRES_PORT}],
        "readinessProbe": {
            "exec": {
                "command": ["pg_isready", "-h", "127.0.0.1", "-U", POSTGRES_USER, "-d", POSTGRES_DB]
            },
            "periodSeconds": 5,
            "timeoutSeconds": 5,
        },
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
        "volumeMounts": [{"name": "data", "mountPath": data}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _metadata(options, POSTGRES_NAME, "postgres"),
        "spec": {
            "serviceName": POSTGRES_NAME,
            "replicas": 1,
            "selector": {"matchLabels": _selector("postgres")},
            "template": {
                "metadata": {"labels": _labels("postgres")},
                "spec": {
                    # The image starts as root and drops to its postgres user itself.
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 60,
                    "containers": [container],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": options.postgres_storage}},
                    },
                }
            ],
        },
    }


def _proxy_service(options: KubernetesOptions) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(options, PROXY_NAME, "proxy"),
        "spec": {
            "type": "ClusterIP",  # no authentication: never outside the cluster
            "selector": _selector("proxy"),
            "ports": [{"name": "grpc", "port": PROXY_PORT, "targetPort": PROXY_PORT}],
        },
    }


def _proxy(options: KubernetesOptions) -> Manifest:
    container = {
        "name": "proxy",
        "image": options.image,
        "command": ["hpo", "proxy", "--host", "0.0.0.0", "--port", str(PROXY_PORT)],
        "env": [_secret_env("HPO_STORAGE", options.db_secret, SECRET_URL_KEY)],
        "ports": [{"name": "grpc", "containerPort": PROXY_PORT}],
        "readinessProbe": {"tcpSocket": {"port": PROXY_PORT}, "periodSeconds": 5},
        "livenessProbe": {
            "tcpSocket": {"port": PROXY_PORT},
            "periodSeconds": 20,
            "failureThreshold": 6,
        },
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
        "securityContext": _hpo_security(),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(options, PROXY_NAME, "proxy"),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": _selector("proxy")},
            "template": {
                "metadata": {"labels": _labels("proxy")},
                "spec": _pod_spec([container]),
            },
        },
    }


def _network_policies(options: KubernetesOptions) -> list[Manifest]:
    """The proxy has no authentication: only hpo's pods may reach it, and only the proxy
    and the dashboard reach the database. Inert where the network plugin has no policies;
    `kubectl port-forward` to the dashboard is not affected."""
    hpo_pods = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "hpo"}}}
    policies = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _metadata(options, PROXY_NAME, "proxy"),
            "spec": {
                "podSelector": {"matchLabels": _selector("proxy")},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [hpo_pods], "ports": [{"port": PROXY_PORT}]}],
            },
        }
    ]
    if options.database == "postgres":
        readers = [
            {"podSelector": {"matchLabels": _selector(component)}}
            for component in ("proxy", "dashboard")
        ]
        policies.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": _metadata(options, POSTGRES_NAME, "postgres"),
                "spec": {
                    "podSelector": {"matchLabels": _selector("postgres")},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": readers, "ports": [{"port": POSTGRES_PORT}]}],
                },
            }
        )
    return policies


def _dashboard_service(options: KubernetesOptions) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(options, DASHBOARD_NAME, "dashboard"),
        "spec": {
            "type": "ClusterIP",  # reach it with `kubectl port-forward`, never a public address
            "selector": _selector("dashboard"),
            "ports": [{"name": "http", "port": DASHBOARD_PORT, "targetPort": DASHBOARD_PORT}],
        },
    }


def _dashboard(options: KubernetesOptions) -> Manifest:
    container = {
        "name": "dashboard",
        "image": options.image,
        "command": ["hpo", "dashboard", "--host", "0.0.0.0", "--port", str(DASHBOARD_PORT)],
        "env": [
            # Reads whole studies: straight from the database, as in docker-compose.yml.
            _secret_env("HPO_STORAGE", options.db_secret, SECRET_URL_KEY),
            _env("HPO_ARTIFACTS", ARTIFACTS_PATH),
        ],
        "ports": [{"name": "http", "containerPort": DASHBOARD_PORT}],
        "readinessProbe": {"tcpSocket": {"port": DASHBOARD_PORT}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
        "securityContext": _hpo_security(),
        "volumeMounts": [_artifacts_mount()],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(options, DASHBOARD_NAME, "dashboard"),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": _selector("dashboard")},
            "template": {
                "metadata": {"labels": _labels("dashboard")},
                "spec": _pod_spec([container], volumes=[_artifacts_volume()]),
            },
        },
    }


def _study_config(options: KubernetesOptions) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _study_metadata(options, "study", "study"),
        "data": {config_key(options.study_file_name): options.study_text},
    }


def _proxy_env() -> list[Manifest]:
    """The storage of the launch and of every worker: the proxy, never the database."""
    return [_env("HPO_STORAGE", PROXY_URL), _env("HPO_ARTIFACTS", ARTIFACTS_PATH)]


def _launch_job(options: KubernetesOptions) -> Manifest:
    key = config_key(options.study_file_name)
    command = ["hpo", "launch", "study", f"{STUDY_PATH}/{key}", "--workers", "0"]
    command += ["--name", _literal(options.study_name)]
    if options.trials is not None:
        command += ["--trials", str(options.trials)]
    container = {
        "name": "launch",
        "image": options.image,
        "command": command,
        "env": _proxy_env(),
        "securityContext": _hpo_security(),
        "volumeMounts": [
            {"name": "study", "mountPath": STUDY_PATH, "readOnly": True},
            _artifacts_mount(),
        ],
    }
    config = f"hpo-{study_slug(options)}-study"
    volumes = [{"name": "study", "configMap": {"name": config}}, _artifacts_volume()]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _study_metadata(options, "launch", "launch"),
        "spec": {
            # Retries while the proxy starts; creating or resuming the study twice is safe.
            "backoffLimit": 6,
            "template": {
                "metadata": {"labels": _study_labels(options, "launch")},
                "spec": _pod_spec([container], restartPolicy="OnFailure", volumes=volumes),
            },
        },
    }


def _worker_command(options: KubernetesOptions) -> list[str]:
    gpus = options.gpus_per_worker
    # --worker-index is the sampler's seed offset. A pod running several processes numbers
    # them from its own index, so pods step by 1000 ("$(WORKER_INDEX)000"); Kubernetes
    # expands the variable, and "0000" reads as 0.
    several = gpus * options.workers_per_gpu > 1
    index = "$(WORKER_INDEX)" + ("0" * INDEX_STRIDE_DIGITS if several else "")
    command = ["hpo", "worker", "--study", _literal(options.study_name)]
    command += ["--gpus", "all" if gpus else "none", "--worker-index", index]
    if options.workers_per_gpu > 1:
        command += ["--workers-per-gpu", str(options.workers_per_gpu)]
    if options.data_claim is not None:
        command += ["--data-dir", DATA_PATH]
    return command


def _workers_job(options: KubernetesOptions) -> Manifest:
    env = [
        *_proxy_env(),
        {
            "name": "WORKER_INDEX",
            "valueFrom": {
                "fieldRef": {
                    "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"
                }
            },
        },
    ]
    resources: Manifest = {}
    if options.gpus_per_worker:
        resources["limits"] = {"nvidia.com/gpu": options.gpus_per_worker}
    if options.cpus_per_worker is not None:
        resources.setdefault("requests", {})["cpu"] = str(options.cpus_per_worker)
        if not options.gpus_per_worker:  # torch's default is every core of the node
            env.append(_env("HPO_THREADS", str(options.cpus_per_worker)))
    if options.memory_per_worker is not None:
        resources.setdefault("requests", {})["memory"] = options.memory_per_worker
        resources.setdefault("limits", {})["memory"] = options.memory_per_worker
    mounts = [_artifacts_mount()]
    volumes = [_artifacts_volume()]
    if options.data_claim is not None:
        mounts.append({"name": "data", "mountPath": DATA_PATH, "readOnly": True})
        volumes.append(
            {
                "name": "data",
                "persistentVolumeClaim": {"claimName": options.data_claim, "readOnly": True},
            }
        )
    worker: Manifest = {
        "name": "worker",
        "image": options.image,
        "command": _worker_command(options),
        "env": env,
        "securityContext": _hpo_security(),
        "volumeMounts": mounts,
    }
    if resources:
        worker["resources"] = resources
    wait = {
        "name": "wait-for-study",
        "image": options.image,
        "command": ["python", "-W", "ignore", "-c", _literal(WAIT_FOR_STUDY)],
        "env": [
            _env("HPO_STORAGE", PROXY_URL),
            _env("WAIT_FOR_STUDY", _literal(options.study_name)),
        ],
        "securityContext": _hpo_security(),
    }
    more: Manifest = {
        "restartPolicy": "OnFailure",
        # SIGTERM: the worker finishes its epoch, checkpoints and re-queues its trial.
        "terminationGracePeriodSeconds": options.grace_seconds,
        "initContainers": [wait],
        "volumes": volumes,
    }
    if options.gpus_per_worker:
        # GPU nodes are often tainted so that only pods asking for GPUs land there.
        more["tolerations"] = [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _study_metadata(options, "workers", "worker"),
        "spec": {
            "completionMode": "Indexed",
            "completions": options.workers,
            "parallelism": options.workers,
            # Restarts of all pods together (restartPolicy OnFailure). No podFailurePolicy:
            # it needs restartPolicy Never, and hpo exits 2 for lost storage and user errors
            # alike, so no exit code can tell a retry from a stop.
            "backoffLimit": options.workers * options.restarts_per_worker,
            "template": {
                "metadata": {"labels": _study_labels(options, "worker")},
                "spec": _pod_spec([worker], **more),
            },
        },
    }


# ---------------------------------------------------------------- files


class _Dumper(yaml.SafeDumper):
    """Safe YAML with multi-line strings (the study file) as readable `|` blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None  # PyYAML falls back to quotes where | cannot hold it
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def to_yaml(objects: list[Manifest]) -> str:
    """The objects as one YAML stream, keys in the order built."""
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def render_notes(options: KubernetesOptions, out_dir: str | Path) -> str:
    """README.txt of the folder: the Secret to create, then apply, watch, the dashboard."""
    ns = f"-n {options.namespace} " if options.namespace != "default" else ""
    folder = shlex.quote(str(out_dir))
    slug = study_slug(options)
    secret = options.db_secret
    gpus = f"{options.gpus_per_worker} GPU(s) each" if options.gpus_per_worker else "CPU only"
    if options.database == "postgres":
        secret_steps = f"""\
   umask 077
   openssl rand -hex 24 | tr -d '\\n' > password        # hex: safe in a URL as it is
   printf 'postgresql://{POSTGRES_USER}:%s@{POSTGRES_NAME}:{POSTGRES_PORT}/{POSTGRES_DB}' \\
       "$(cat password)" > url
   kubectl {ns}create secret generic {secret} --from-file=password --from-file=url
   rm password url"""
    else:
        secret_steps = f"""\
   umask 077
   # the existing database's URL; percent-encode special characters in the password
   printf '%s' 'postgresql://USER:PASSWORD@HOST:5432/DBNAME' > url    # edit this line
   kubectl {ns}create secret generic {secret} --from-file=url
   rm url"""
    namespace_step = (
        f"   kubectl create namespace {options.namespace}\n"
        if options.namespace != "default"
        else ""
    )
    return f"""\
hpo on Kubernetes: study {slug} (objects hpo-{slug}-*), {options.workers} worker pod(s), {gpus},
image {options.image}, namespace {options.namespace}.

1. The database Secret. The password is in no file here: it lives only in this Secret, which
   the proxy and the dashboard read; workers talk to the proxy ({PROXY_URL}) and never
   see it. Files rather than --from-literal keep it off command lines (ps, shell history).
{namespace_step}{secret_steps}

2. Apply everything (in file name order: volume, database, proxy, dashboard, study, workers):
   kubectl apply -f {folder}

3. Watch:
   kubectl {ns}get pods -l app.kubernetes.io/name=hpo
   kubectl {ns}logs -f job/hpo-{slug}-launch
   kubectl {ns}wait --for=condition=complete job/hpo-{slug}-workers --timeout=24h
   Workers wait (Init) until the launch Job has created the study: if they stay there,
   its log says why.

4. The dashboard has a ClusterIP Service only and no authentication; do not expose it
   (no NodePort, LoadBalancer or Ingress). From your machine:
   kubectl {ns}port-forward svc/{DASHBOARD_NAME} {DASHBOARD_PORT}:{DASHBOARD_PORT}
   then open http://127.0.0.1:{DASHBOARD_PORT}/

Notes
- {ARTIFACTS_CLAIM} is ReadWriteMany (NFS, CephFS, EFS, Filestore...): every worker pod writes
  checkpoints there, so a re-queued trial resumes on any node. Pick the class with
  --storage-class if the cluster's default cannot do ReadWriteMany.
- A stopped worker (drain, preemption, kubectl delete pod) gets
  terminationGracePeriodSeconds={options.grace_seconds} to finish its epoch, checkpoint and
  re-queue its trial; raise it if one epoch takes longer.
- A worker that stops on request may exit 0, and the Job then counts its index as done: the
  other workers finish the study. If none is left, delete the workers Job and apply again;
  the new pods resume the queued trials from their checkpoints.
- Jobs cannot be changed once created: to change workers or image, run
  kubectl {ns}delete job hpo-{slug}-launch hpo-{slug}-workers
  and apply again. The study resumes where it stands.
- kubectl delete -f {folder} also deletes {ARTIFACTS_CLAIM} (checkpoints, reports); the
  database's volume stays until its PersistentVolumeClaim is deleted.
"""


def write_manifests(
    options: KubernetesOptions, out_dir: str | Path, *, force: bool = False
) -> list[Path]:
    """Write one YAML file per component and README.txt into `out_dir`; the paths written.

    An existing folder that is not empty is refused unless `force`, which rewrites this
    module's files and removes those of them the options no longer produce (a database
    file left behind would otherwise still be applied); other files stay.
    """
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise HpoError(f"--out {str(folder)!r} is a file; name a folder")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise HpoError(
            f"--out {str(folder)!r} is not empty; pass --force to overwrite its manifests"
        )
    files = render_manifests(options)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ALL_FILES:
        path = folder / name
        if name == NOTES_FILE:
            path.write_text(render_notes(options, folder), encoding="utf-8")
        elif name in files:
            path.write_text(to_yaml(files[name]), encoding="utf-8")
        else:
            path.unlink(missing_ok=True)
            continue
        written.append(path)
    return written


def write_study_manifests(
    file: str | Path,
    out_dir: str | Path | None = None,
    *,
    workers: int,
    image: str,
    gpus_per_worker: int = 0,
    name: str | None = None,
    force: bool = False,
    **fields: Any,
) -> list[Path]:
    """`hpo k8s FILE`: the manifests of the study file `file` into `out_dir` (default
    k8s/NAME, NAME the study name made safe); the paths written.

    `fields` are the other KubernetesOptions (namespace, trials, database, ...).
    """
    options = options_from_file(
        file, name=name, workers=workers, image=image, gpus_per_worker=gpus_per_worker, **fields
    )
    folder = Path("k8s") / study_slug(options) if out_dir is None else Path(out_dir)
    return write_manifests(options, folder, force=force)
