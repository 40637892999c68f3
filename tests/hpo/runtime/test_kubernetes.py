"""hpo.runtime.kubernetes (`hpo k8s`): the written manifests, parsed back from YAML, checked
against the Kubernetes API schemas (kubernetes-validate, strict: an unknown field fails) and
for hpo's invariants: no password in any file, nothing exposed outside the cluster, workers
on the proxy only, Kubernetes names safe for any study name."""

from __future__ import annotations

import copy
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from hpo.errors import HpoError
from hpo.runtime import kubernetes as k8s
from hpo.runtime.kubernetes import options as knames

ROOT = Path(__file__).resolve().parents[3]
SENTINEL = "s3ntinel-PASSWORD-9f2c"  # a database password that must reach no file
# The oldest Kubernetes release the manifests are meant for, and the newest with a schema.
VERSIONS = ("1.29", kubernetes_validate.latest_version())
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")  # Service names
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
STUDY = """\
[study]
name = "tiny"
trials = 4

[model]
name = "mlp"

[data]
name = "rings"

[space]
depth = { low = 1, high = 2 }
"""
CASES = {
    "cpu": {},
    "gpu": {
        "workers": 5,
        "gpus_per_worker": 2,
        "workers_per_gpu": 2,
        "cpus_per_worker": 8,
        "memory_per_worker": "32Gi",
        "data_claim": "datasets",
        "storage_class": "nfs-client",
        "trials": 200,
        "namespace": "hpo",
        "grace_seconds": 1800,
    },
    "external": {"workers": 1, "database": "external", "db_secret": "my-db"},
    "no-policies": {"network_policies": False, "gpus_per_worker": 1},
}


def options(**overrides: Any) -> k8s.KubernetesOptions:
    fields: dict[str, Any] = {
        "study_file_name": "tiny.toml",
        "study_text": STUDY,
        "study_name": "tiny",
        "workers": 3,
        "image": "registry.example.com/hpo:1.0",
    }
    return k8s.KubernetesOptions(**{**fields, **overrides})


def written(folder: Path, **overrides: Any) -> dict[str, list[dict[str, Any]]]:
    """Write the manifests of these options into `folder`, and read them back."""
    paths = k8s.write_manifests(options(**overrides), folder)
    return {
        path.name: [item for item in yaml.safe_load_all(path.read_text()) if item]
        for path in paths
        if path.suffix == ".yaml"
    }


def objects(files: dict[str, list[dict[str, Any]]], kind: str | None = None) -> list[dict]:
    return [item for items in files.values() for item in items if kind in (None, item["kind"])]


def pod_specs(files: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """metadata.name -> pod spec, of every object that runs pods."""
    return {
        item["metadata"]["name"]: item["spec"]["template"]["spec"]
        for item in objects(files)
        if item["kind"] in ("Deployment", "StatefulSet", "Job")
    }


def workers_job(files: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    (job,) = files[knames.WORKERS_FILE]
    return job


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {entry["name"]: entry.get("value", entry.get("valueFrom")) for entry in container["env"]}


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of a command or env value (k8s.io/.../expansion.Expand):
    `$$` is one `$`, `$(NAME)` a variable (kept as written when undefined)."""
    out, i = [], 0
    while i < len(text):
        if text[i] != "$" or i + 1 == len(text):
            out.append(text[i])
            i += 1
        elif text[i + 1] == "$":
            out.append("$")
            i += 2
        elif text[i + 1] == "(" and (end := text.find(")", i + 2)) != -1:
            name = text[i + 2 : end]
            out.append(env.get(name, f"$({name})"))
            i = end + 1
        else:
            out.append(text[i : i + 2])
            i += 2
    return "".join(out)


# ---------------------------------------------------------------- the schema


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_written_manifest_validates_against_the_kubernetes_schema(
    tmp_path: Path, case: str
) -> None:
    files = written(tmp_path, **CASES[case])
    assert files == k8s.render_manifests(options(**CASES[case]))  # YAML round trip
    assert objects(files)
    for item in objects(files):
        for version in VERSIONS:
            kubernetes_validate.validate(item, version, strict=True)


def _deployment(files: dict) -> dict:
    return next(item for item in objects(files, "Deployment"))


@pytest.mark.parametrize(
    "break_it",
    [
        lambda d: d["spec"].update(replicas="two"),
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(imagePullPolcy="Always"),
        lambda d: d["spec"].update(unknownField=1),
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(env={"A": "b"}),
        lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"),
    ],
    ids=["replicas-two", "misspelt-field", "unknown-field", "env-as-map", "no-container-name"],
)
def test_the_validator_rejects_a_broken_manifest(tmp_path: Path, break_it: Any) -> None:
    deployment = _deployment(written(tmp_path))
    kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)  # valid as written
    broken = copy.deepcopy(deployment)
    break_it(broken)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


# ---------------------------------------------------------------- secrets and exposure


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_password_in_any_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    # Whatever the environment holds, nothing of it is copied into the files.
    monkeypatch.setenv("HPO_STORAGE", f"postgresql://hpo:{SENTINEL}@db/hpo")
    monkeypatch.setenv("POSTGRES_PASSWORD", SENTINEL)
    files = written(tmp_path, **CASES[case])
    for path in tmp_path.iterdir():
        assert SENTINEL not in path.read_text(), path.name
    assert not objects(files, "Secret")
    secret = CASES[case].get("db_secret", "hpo-db")
    for name, spec in pod_specs(files).items():
        for container in spec["containers"] + spec.get("initContainers", []):
            for entry in container.get("env", []):
                # a database URL or password only ever comes from the user's Secret
                assert "://" not in entry.get("value", "").replace(knames.PROXY_URL, ""), (
                    name,
                    entry,
                )
                if "PASSWORD" in entry["name"] or entry["name"] == "HPO_STORAGE":
                    ref = entry.get("valueFrom", {}).get("secretKeyRef")
                    assert ref is None or ref["name"] == secret
            assert "envFrom" not in container


@pytest.mark.parametrize("case", sorted(CASES))
def test_nothing_is_exposed_outside_the_cluster(tmp_path: Path, case: str) -> None:
    files = written(tmp_path, **CASES[case])
    kinds = {item["kind"] for item in objects(files)}
    assert kinds <= {
        "ConfigMap",
        "Deployment",
        "Job",
        "NetworkPolicy",
        "PersistentVolumeClaim",
        "Service",
        "StatefulSet",
    }
    services = {item["metadata"]["name"]: item["spec"] for item in objects(files, "Service")}
    assert set(services) >= {knames.PROXY_NAME, knames.DASHBOARD_NAME}
    for spec in services.values():
        assert spec.get("type", "ClusterIP") == "ClusterIP"
        assert "externalIPs" not in spec
        assert all("nodePort" not in port for port in spec["ports"])
    for spec in pod_specs(files).values():
        assert not spec.get("hostNetwork")
        for container in spec["containers"]:
            assert all("hostPort" not in port for port in container.get("ports", []))
    notes = (tmp_path / knames.NOTES_FILE).read_text()
    assert f"port-forward svc/{knames.DASHBOARD_NAME} 8080:8080" in notes


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


@pytest.mark.parametrize("case", sorted(CASES))
def test_selectors_and_references_resolve(tmp_path: Path, case: str) -> None:
    # What the schema cannot see: selectors that match their pods, names that exist.
    files = written(tmp_path, **CASES[case])
    templates = {
        item["metadata"]["name"]: item["spec"]["template"]["metadata"]["labels"]
        for item in objects(files)
        if item["kind"] in ("Deployment", "StatefulSet", "Job")
    }
    for item in objects(files):
        if item["kind"] in ("Deployment", "StatefulSet"):
            assert _selects(
                item["spec"]["selector"]["matchLabels"], templates[item["metadata"]["name"]]
            )
        if item["kind"] == "Service":
            assert _selects(item["spec"]["selector"], templates[item["metadata"]["name"]])
    names = {(item["kind"], item["metadata"]["name"]) for item in objects(files)}
    for spec in pod_specs(files).values():
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in names
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            if claim is not None and claim != CASES[case].get("data_claim"):
                assert ("PersistentVolumeClaim", claim) in names
    policies = {item["metadata"]["name"]: item["spec"] for item in objects(files, "NetworkPolicy")}
    if CASES[case].get("network_policies", True):
        # Launch and workers may reach the proxy; only proxy and dashboard the database.
        allowed = policies[knames.PROXY_NAME]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
        study = f"hpo-{knames.study_slug(options())}"
        assert _selects(allowed, templates[f"{study}-workers"])
        assert _selects(allowed, templates[f"{study}-launch"])
        if knames.POSTGRES_NAME in templates:
            readers = policies[knames.POSTGRES_NAME]["ingress"][0]["from"]
            allowed_to_db = {
                name
                for name, labels in templates.items()
                if any(_selects(peer["podSelector"]["matchLabels"], labels) for peer in readers)
            }
            assert allowed_to_db == {knames.PROXY_NAME, knames.DASHBOARD_NAME}
    else:
        assert not policies


def test_the_dashboard_and_proxy_read_the_database_url_from_the_secret(tmp_path: Path) -> None:
    files = written(tmp_path, db_secret="my-db")
    specs = pod_specs(files)
    for name in (knames.PROXY_NAME, knames.DASHBOARD_NAME):
        (container,) = specs[name]["containers"]
        storage = env_of(container)["HPO_STORAGE"]
        assert storage == {"secretKeyRef": {"name": "my-db", "key": knames.SECRET_URL_KEY}}
    (postgres,) = specs[knames.POSTGRES_NAME]["containers"]
    assert env_of(postgres)["POSTGRES_PASSWORD"] == {
        "secretKeyRef": {"name": "my-db", "key": knames.SECRET_PASSWORD_KEY}
    }
    (proxy,) = specs[knames.PROXY_NAME]["containers"]
    assert proxy["command"] == ["hpo", "proxy", "--host", "0.0.0.0", "--port", "13000"]
    assert proxy["readinessProbe"]["tcpSocket"] == {"port": 13000}
    (dashboard,) = specs[knames.DASHBOARD_NAME]["containers"]
    assert dashboard["command"] == ["hpo", "dashboard", "--host", "0.0.0.0", "--port", "8080"]


def test_an_external_database_has_no_postgres(tmp_path: Path) -> None:
    files = written(tmp_path, database="external")
    assert knames.POSTGRES_FILE not in files
    assert not objects(files, "StatefulSet")
    assert "POSTGRES_PASSWORD" not in str(files)
    assert "--from-file=password" not in (tmp_path / knames.NOTES_FILE).read_text()


def test_every_hpo_pod_runs_unprivileged_without_service_links(tmp_path: Path) -> None:
    # Service links would put HPO_PROXY_PORT=tcp://... beside click's HPO_* options.
    for name, spec in pod_specs(written(tmp_path)).items():
        assert spec["enableServiceLinks"] is False, name
        assert spec["automountServiceAccountToken"] is False, name
        if name != knames.POSTGRES_NAME:
            assert spec["securityContext"]["runAsUser"] == knames.HPO_UID
            for container in spec["containers"] + spec.get("initContainers", []):
                assert container["securityContext"]["allowPrivilegeEscalation"] is False


# ---------------------------------------------------------------- the workers


@pytest.mark.parametrize("case", sorted(CASES))
def test_workers_and_launch_talk_to_the_proxy_only(tmp_path: Path, case: str) -> None:
    files = written(tmp_path, **CASES[case])
    study = f"hpo-{knames.study_slug(options())}"
    for name in (f"{study}-workers", f"{study}-launch"):
        spec = pod_specs(files)[name]
        for container in spec["containers"] + spec.get("initContainers", []):
            assert env_of(container)["HPO_STORAGE"] == "grpc://hpo-proxy:13000"
        text = str(spec)
        assert "secret" not in text.lower(), name
        assert CASES[case].get("db_secret", "hpo-db") not in text


@pytest.mark.parametrize("workers", [1, 7, knames.MAX_WORKERS])
def test_the_workers_are_one_indexed_job(tmp_path: Path, workers: int) -> None:
    job = workers_job(written(tmp_path, workers=workers))
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == workers
    assert job["spec"]["backoffLimit"] == workers * 6
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "OnFailure"
    assert job["spec"]["template"]["metadata"]["labels"]["hpo/study"] == "tiny"
    (worker,) = spec["containers"]
    assert worker["command"][:4] == ["hpo", "worker", "--study", "tiny"]
    assert env_of(worker)["HPO_ARTIFACTS"] == knames.ARTIFACTS_PATH
    assert {"name": "artifacts", "mountPath": knames.ARTIFACTS_PATH} in worker["volumeMounts"]


@pytest.mark.parametrize(("gpus", "per_gpu"), [(0, 1), (1, 1), (1, 3), (4, 1), (16, 32)])
def test_gpu_limits_only_when_gpus_are_asked_for(tmp_path: Path, gpus: int, per_gpu: int) -> None:
    spec = workers_job(written(tmp_path, gpus_per_worker=gpus, workers_per_gpu=per_gpu))
    spec = spec["spec"]["template"]["spec"]
    (worker,) = spec["containers"]
    limits = worker.get("resources", {}).get("limits", {})
    command = worker["command"]
    gpus_given = command[command.index("--gpus") + 1]
    if gpus:
        assert limits["nvidia.com/gpu"] == gpus
        assert gpus_given == "all"
        assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    else:
        assert "nvidia.com/gpu" not in limits
        assert gpus_given == "none"
        assert "tolerations" not in spec
    # Seed offsets: pods step far enough apart that their processes never share one.
    index = command[command.index("--worker-index") + 1]
    processes = gpus * per_gpu
    offsets = {
        int(expand(index, {"WORKER_INDEX": str(pod)})) + process
        for pod in range(3)
        for process in range(max(1, processes))
    }
    assert len(offsets) == 3 * max(1, processes)


def test_the_worker_index_comes_from_the_indexed_job(tmp_path: Path) -> None:
    (worker,) = workers_job(written(tmp_path))["spec"]["template"]["spec"]["containers"]
    annotation = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert env_of(worker)["WORKER_INDEX"] == {"fieldRef": {"fieldPath": annotation}}


def test_cpu_workers_get_threads_and_data_a_read_only_volume(tmp_path: Path) -> None:
    job = workers_job(written(tmp_path, cpus_per_worker=4, data_claim="datasets"))
    spec = job["spec"]["template"]["spec"]
    (worker,) = spec["containers"]
    assert env_of(worker)["HPO_THREADS"] == "4"
    assert worker["resources"]["requests"]["cpu"] == "4"
    assert worker["command"][-2:] == ["--data-dir", knames.DATA_PATH]
    assert {"name": "data", "mountPath": knames.DATA_PATH, "readOnly": True} in worker[
        "volumeMounts"
    ]


def test_the_grace_period_lets_a_worker_finish_its_epoch(tmp_path: Path) -> None:
    spec = workers_job(written(tmp_path))["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == knames.DEFAULT_GRACE_SECONDS
    assert knames.DEFAULT_GRACE_SECONDS >= knames.MIN_GRACE_SECONDS >= 60
    spec = workers_job(written(tmp_path / "b", grace_seconds=3600))["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 3600
    with pytest.raises(HpoError, match="--grace-seconds must be an integer from 60"):
        options(grace_seconds=knames.MIN_GRACE_SECONDS - 1)


def test_the_launch_creates_the_study_from_the_config_map(tmp_path: Path) -> None:
    files = written(tmp_path, trials=50)
    config, job = files[knames.LAUNCH_FILE]
    assert config["data"] == {"tiny.toml": STUDY}
    spec = job["spec"]["template"]["spec"]
    (launch,) = spec["containers"]
    assert launch["command"] == [
        "hpo", "launch", "study", "/study/tiny.toml", "--workers", "0",
        "--name", "tiny", "--trials", "50",
    ]  # fmt: skip
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert volumes["study"]["configMap"]["name"] == config["metadata"]["name"]
    claim = files[knames.ARTIFACTS_FILE][0]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert volumes["artifacts"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


@pytest.mark.parametrize(
    "text",
    [
        STUDY,
        STUDY + "# trailing spaces   \n\n\n",
        "---\n...\n" + STUDY + "key = 'a: b # c'\n",
        STUDY.replace("\n", "\r\n"),
        '[study]\nname = "Ünïcødé ✓"\n\t# tab\n',
        "no final newline",
    ],
)
def test_the_study_file_round_trips_exactly(tmp_path: Path, text: str) -> None:
    (config, _) = written(tmp_path, study_text=text)[knames.LAUNCH_FILE]
    assert config["data"]["tiny.toml"] == text


# ---------------------------------------------------------------- names


HOSTILE_NAMES = [
    "Evil Name_With.Stuff/../x",
    "x" * knames.MAX_NAME_LENGTH,
    "Ω" * 100,
    "$(HPO_STORAGE)",
    "a$$(b)$",
    "---",
    "UPPER",
    "-leading-and-trailing-",
    "9starts-with-a-digit",
    "'; rm -rf / #",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_names_are_valid_kubernetes_names_for_any_study_name(tmp_path: Path, name: str) -> None:
    files = written(tmp_path, study_name=name, workers=knames.MAX_WORKERS)
    for item in objects(files):
        metadata = item["metadata"]
        assert DNS_LABEL.fullmatch(metadata["name"]) and len(metadata["name"]) <= 63
        if item["kind"] == "Service":
            assert DNS_1035.fullmatch(metadata["name"])
        for labels in (
            metadata["labels"],
            item.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {}),
        ):
            assert all(LABEL_VALUE.fullmatch(v) and len(v) <= 63 for v in labels.values())
    job = workers_job(files)
    # An Indexed Job's pods are named JOB-INDEX, a DNS label too.
    assert len(f"{job['metadata']['name']}-{knames.MAX_WORKERS - 1}") <= 63
    assert job["metadata"]["annotations"]["hpo/study-name"] == name
    # The commands carry the name itself once Kubernetes has expanded $(VAR) references.
    env = {"HPO_STORAGE": "grpc://x", "WORKER_INDEX": "0"}
    spec = job["spec"]["template"]["spec"]
    (worker,) = spec["containers"]
    assert expand(worker["command"][3], env) == name
    (wait,) = spec["initContainers"]
    assert expand(env_of(wait)["WAIT_FOR_STUDY"], env) == name
    (launch,) = pod_specs(files)[f"{job['metadata']['name'][: -len('-workers')]}-launch"][
        "containers"
    ]
    assert expand(launch["command"][launch["command"].index("--name") + 1], env) == name


def test_changed_names_get_a_hash_so_that_they_stay_apart() -> None:
    assert knames.dns_label_part("cifar10-resnet") == "cifar10-resnet"
    slugs = {knames.dns_label_part(name) for name in ("Tiny", "tiny", "TINY", "ti ny", "ti-ny ")}
    assert len(slugs) == 5
    long = knames.dns_label_part("a" * 200)
    assert len(long) <= knames.SLUG_LENGTH and re.fullmatch(r"a+-[0-9a-f]{8}", long)
    assert re.fullmatch(r"[0-9a-f]{8}", knames.dns_label_part("___"))


@pytest.mark.parametrize(
    ("file_name", "key"),
    [
        ("cifar.toml", "cifar.toml"),
        ("evil name.toml", "study.toml"),
        ("..toml", "study.toml"),
        ("study.txt", "study.toml"),
    ],
)
def test_the_config_map_key_is_the_file_name_when_it_is_a_valid_key(
    file_name: str, key: str
) -> None:
    assert knames.config_key(file_name) == key


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"workers": 0}, "--workers must be an integer from 1 to 10000, got 0"),
        ({"workers": 10_001}, "--workers must be an integer from 1 to 10000"),
        ({"workers": True}, "--workers must be an integer"),
        ({"workers": 2.5}, "--workers must be an integer"),
        ({"gpus_per_worker": -1}, "--gpus-per-worker must be an integer from 0 to 16"),
        ({"gpus_per_worker": 17}, "--gpus-per-worker must be an integer from 0 to 16"),
        ({"workers_per_gpu": 2}, "--workers-per-gpu needs --gpus-per-worker >= 1"),
        ({"trials": 0}, "--trials must be an integer"),
        ({"image": ""}, "--image '' is not an image reference"),
        ({"image": "hpo latest"}, "--image 'hpo latest' is not an image reference"),
        ({"image": "hpo:1\n"}, "is not an image reference"),
        ({"image": "--privileged"}, "is not an image reference"),
        ({"postgres_image": "postgres 15"}, "--postgres-image"),
        ({"namespace": "Hpo"}, "--namespace 'Hpo' is not a Kubernetes name"),
        ({"namespace": "a_b"}, "--namespace 'a_b' is not a Kubernetes name"),
        ({"namespace": "x" * 64}, "is not a Kubernetes name"),
        ({"db_secret": "Bad Secret"}, "--db-secret"),
        ({"data_claim": "../x"}, "--data-claim"),
        ({"data_claim": "a..b"}, "--data-claim"),
        ({"db_secret": "s" * 254}, "at most 253 characters"),
        ({"storage_class": "-nfs"}, "--storage-class"),
        ({"study_name": ""}, "study name ''"),
        ({"study_name": " tiny"}, "without surrounding spaces"),
        ({"study_name": "x" * 200}, "study name is 200 characters; at most 128"),
        ({"study_name": "a\nb"}, "has control characters"),
        ({"study_text": "  \n"}, "the study file is empty"),
        ({"study_text": "#" * (knames.MAX_STUDY_BYTES + 1)}, "at most 524288"),
        ({"database": "sqlite"}, "--database 'sqlite': choose postgres or external"),
        ({"artifacts_storage": "lots"}, "--artifacts-storage 'lots' is not a size"),
        ({"postgres_storage": "0"}, "--postgres-storage '0' is not a size"),
        ({"memory_per_worker": "-8Gi"}, "--memory-per-worker"),
        ({"cpus_per_worker": 0}, "--cpus-per-worker"),
        ({"grace_seconds": 10**6}, "--grace-seconds"),
    ],
)
def test_bad_options_are_refused_with_one_line(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(HpoError) as caught:
        options(**overrides)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text and len(text) < 300


def test_an_existing_folder_is_refused_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(HpoError, match="is not empty; pass --force") as caught:
        k8s.write_manifests(options(), out)
    assert "\n" not in str(caught.value)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    k8s.write_manifests(options(), out, force=True)
    assert (out / knames.POSTGRES_FILE).exists()
    # Forced again without the database: its old file goes (apply would still create it).
    k8s.write_manifests(options(database="external"), out, force=True)
    assert not (out / knames.POSTGRES_FILE).exists()
    assert (out / "mine.txt").read_text() == "keep"
    (tmp_path / "file").write_text("")
    with pytest.raises(HpoError, match="is a file"):
        k8s.write_manifests(options(), tmp_path / "file", force=True)


def test_an_empty_existing_folder_is_used(tmp_path: Path) -> None:
    paths = k8s.write_manifests(options(), tmp_path)
    assert {p.name for p in paths} == {
        name for name in knames.ALL_FILES
    }  # cpu case: every file, the database included
    notes = (tmp_path / knames.NOTES_FILE).read_text()
    assert "kubectl create secret generic hpo-db --from-file=password --from-file=url" in notes
    assert f"kubectl apply -f {tmp_path}" in notes


# ---------------------------------------------------------------- the study file


def test_options_from_a_study_file(tmp_path: Path) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text(STUDY)
    made = k8s.options_from_file(path, workers=2, image="hpo:1")
    assert (made.study_name, made.study_file_name, made.study_text) == ("tiny", "tiny.toml", STUDY)
    assert k8s.options_from_file(path, name="other", workers=2, image="hpo:1").study_name == "other"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[study\nname = 1", "is not a TOML study file"),
        (b"\xff\xfe", "is not a TOML study file"),
        (b"[model]\nname = 'mlp'\n", "study.name is required (or pass --name)"),
        (b"[study]\nname = 3\n", "study.name is required"),
    ],
)
def test_a_bad_study_file_is_refused_with_one_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(HpoError, match=re.escape(message)) as caught:
        k8s.options_from_file(path, workers=1, image="hpo:1")
    assert "\n" not in str(caught.value)
    with pytest.raises(HpoError, match="cannot read the study file"):
        k8s.options_from_file(tmp_path / "missing.toml", workers=1, image="hpo:1")


def test_write_study_manifests_defaults_to_k8s_slash_the_study(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tiny.toml").write_text(STUDY)
    monkeypatch.chdir(tmp_path)
    paths = k8s.write_study_manifests("tiny.toml", workers=2, image="hpo:1", gpus_per_worker=1)
    assert {p.parent for p in paths} == {Path("k8s/tiny")}
    job = yaml.safe_load((tmp_path / "k8s/tiny" / knames.WORKERS_FILE).read_text())
    assert job["spec"]["completions"] == 2


# ---------------------------------------------------------------- against hpo itself


def _hpo(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hpo", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **kwargs,
    )


def test_every_hpo_command_is_one_the_cli_accepts(tmp_path: Path) -> None:
    files = written(tmp_path, **CASES["gpu"])
    commands = [
        container["command"]
        for spec in pod_specs(files).values()
        for container in spec["containers"]
        if container.get("command", [""])[0] == "hpo"
    ]
    assert len(commands) == 4  # proxy, dashboard, launch, workers
    for command in commands:
        args = [expand(arg, {"WORKER_INDEX": "7"}) for arg in command[1:]]
        # --help after every option: click checks the option names and arity, runs nothing.
        result = _hpo(*args, "--help")
        assert result.returncode == 0, (command, result.stderr)


def test_the_wait_for_study_init_container_against_a_real_proxy(tmp_path: Path) -> None:
    """The init container's own command: it waits while the study is missing and ends as
    soon as the study exists, talking to `hpo proxy` (SQLite behind it, here)."""
    import optuna

    db = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    optuna.create_study(study_name="other", storage=db)
    proxy = subprocess.Popen(
        [sys.executable, "-m", "hpo", "proxy", "--storage", db, "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proxy.stdout is not None
        line = proxy.stdout.readline()
        port = re.search(r"grpc://127\.0\.0\.1:(\d+)", line)
        assert port, line
        name = "Evil $(x) name/.."
        (wait,) = workers_job(written(tmp_path / "out", study_name=name))["spec"]["template"][
            "spec"
        ]["initContainers"]
        command = [expand(arg, {}) for arg in wait["command"]]
        env = {
            **os.environ,
            "HPO_STORAGE": f"grpc://127.0.0.1:{port.group(1)}",
            "WAIT_FOR_STUDY": expand(env_of(wait)["WAIT_FOR_STUDY"], {}),
        }
        waiting = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
        try:
            assert waiting.stdout is not None
            assert waiting.stdout.readline() == "waiting for the launch job to create the study\n"
        finally:
            waiting.kill()
            waiting.wait()
        optuna.create_study(study_name=name, storage=db)
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout == ""
    finally:
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(timeout=30)
