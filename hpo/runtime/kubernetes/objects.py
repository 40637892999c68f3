"""The pieces every manifest shares: labels, metadata, env entries, the pod's security
settings and the artifacts volume."""

from __future__ import annotations

from typing import Any

from hpo.runtime.kubernetes.options import (
    ARTIFACTS_CLAIM,
    ARTIFACTS_PATH,
    HPO_UID,
    KubernetesOptions,
    Manifest,
    study_slug,
)


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
