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

from hpo.runtime.kubernetes.files import write_manifests, write_study_manifests
from hpo.runtime.kubernetes.jobs import render_manifests
from hpo.runtime.kubernetes.options import KubernetesOptions, options_from_file

__all__ = [
    "KubernetesOptions",
    "options_from_file",
    "render_manifests",
    "write_manifests",
    "write_study_manifests",
]
