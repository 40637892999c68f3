"""The long-running parts: PostgreSQL, the storage proxy, its network policies and
optuna-dashboard (ClusterIP only)."""

from __future__ import annotations

from hpo.runtime.kubernetes.objects import (
    _artifacts_mount,
    _artifacts_volume,
    _env,
    _hpo_security,
    _labels,
    _metadata,
    _pod_spec,
    _secret_env,
    _selector,
)
from hpo.runtime.kubernetes.options import (
    ARTIFACTS_PATH,
    DASHBOARD_NAME,
    DASHBOARD_PORT,
    POSTGRES_DB,
    POSTGRES_NAME,
    POSTGRES_PORT,
    POSTGRES_USER,
    PROXY_NAME,
    PROXY_PORT,
    SECRET_PASSWORD_KEY,
    SECRET_URL_KEY,
    KubernetesOptions,
    Manifest,
)


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
