"""Manifests as YAML files, with a README.txt that says how to create the Secret and apply
them."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

from hpo.errors import HpoError
from hpo.runtime.kubernetes.jobs import render_manifests
from hpo.runtime.kubernetes.options import (
    ALL_FILES,
    ARTIFACTS_CLAIM,
    DASHBOARD_NAME,
    DASHBOARD_PORT,
    NOTES_FILE,
    POSTGRES_DB,
    POSTGRES_NAME,
    POSTGRES_PORT,
    POSTGRES_USER,
    PROXY_URL,
    KubernetesOptions,
    Manifest,
    options_from_file,
    study_slug,
)


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

4. The dashboard has a ClusterIP Service only; do not expose it (no NodePort,
   LoadBalancer or Ingress). It answers only requests for localhost and asks for the
   token it printed when it started:
   kubectl {ns}logs deploy/{DASHBOARD_NAME} | grep token=
   kubectl {ns}port-forward svc/{DASHBOARD_NAME} {DASHBOARD_PORT}:{DASHBOARD_PORT}
   then open the printed URL with 127.0.0.1:{DASHBOARD_PORT} as its host.

Notes
- {ARTIFACTS_CLAIM} is ReadWriteMany (NFS, CephFS, EFS, Filestore...): every worker pod writes
  checkpoints there, so a re-queued trial resumes on any node. Pick the class with
  --storage-class if the cluster's default cannot do ReadWriteMany.
- A stopped worker (drain, preemption, kubectl delete pod) gets
  terminationGracePeriodSeconds={options.grace_seconds} to finish its epoch, checkpoint and
  re-queue its trial; raise it if one epoch takes longer.
- A worker stopped before the study is done exits 130, so the Job starts its index again
  (restartPolicy OnFailure) and the new pod resumes the queued trial from its checkpoint.
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
