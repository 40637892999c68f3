"""The study's own objects: its file as a ConfigMap, the Job that creates it through the
proxy, and the Indexed Job of workers; `render_manifests` puts every object in its file."""

from __future__ import annotations

from hpo.runtime.kubernetes.objects import (
    _artifacts_claim,
    _artifacts_mount,
    _artifacts_volume,
    _env,
    _hpo_security,
    _literal,
    _pod_spec,
    _study_labels,
    _study_metadata,
)
from hpo.runtime.kubernetes.options import (
    ARTIFACTS_FILE,
    ARTIFACTS_PATH,
    DASHBOARD_FILE,
    DATA_PATH,
    INDEX_STRIDE_DIGITS,
    LAUNCH_FILE,
    NETWORK_FILE,
    POSTGRES_FILE,
    PROXY_FILE,
    PROXY_URL,
    STUDY_PATH,
    WAIT_FOR_STUDY,
    WORKERS_FILE,
    KubernetesOptions,
    Manifest,
    config_key,
    study_slug,
)
from hpo.runtime.kubernetes.services import (
    _dashboard,
    _dashboard_service,
    _network_policies,
    _postgres,
    _postgres_service,
    _proxy,
    _proxy_service,
)


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
