"""deploy/k8s validated offline: every manifest (after the kustomize patches) against the
Kubernetes JSON schemas bundled in the ``kubernetes-validate`` package (no network), the KEDA
ScaledObject (a CRD) against a small schema of its own, and the wiring between them: labels,
ports, probes, volumes, ConfigMaps, the CLI commands and the settings names.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from schemas.topics import DEFAULT_PARTITIONS
from tests.unit.test_deploy_compose import check_env, command_list, env_names, resolve_cli

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.30"
WORKER_PORT, SINK_PORT = 6066, 8090
APPLIED_SEPARATELY = {K8S / "secret-esp.yaml"}
"""Manifests kept out of the kustomization on purpose (a secret must not be re-applied)."""

KEDA_SCALED_OBJECT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "idleReplicaCount": {"type": "integer", "minimum": 0},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "initialCooldownPeriod": {"type": "integer", "minimum": 0},
                "fallback": {"type": "object"},
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"name": {"type": "string"}, "behavior": {}},
                        },
                        "scalingModifiers": {"type": "object"},
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                            "authenticationRef": {"type": "object"},
                        },
                    },
                },
            },
        },
    },
}
"""The parts of KEDA's ScaledObject CRD (keda.sh/v1alpha1) these manifests use; trigger
metadata is a string map in KEDA (a YAML number there is rejected by the API server)."""

KAFKA_TRIGGER_KEYS = {
    "bootstrapServers", "consumerGroup", "topic", "lagThreshold", "activationLagThreshold",
    "offsetResetPolicy", "allowIdleConsumers", "scaleToZeroOnInvalidOffset",
    "excludePersistentLag", "limitToPartitionsWithLag", "partitionLimitation", "version",
    "sasl", "tls", "unsafeSsl",
}  # fmt: skip
"""Metadata keys of KEDA's Apache Kafka scaler (keda.sh/docs/scalers/apache-kafka)."""


def merge(base: Any, patch: Any) -> Any:
    """Strategic-merge as kustomize does for these patches: maps deep-merge, lists of named
    maps merge by ``name``, anything else is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = merge(base[key], value) if key in base else value
        return out
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(item, dict) and "name" in item for item in base + patch)
    ):
        merged = {item["name"]: item for item in base}
        for item in patch:
            merged[item["name"]] = merge(merged.get(item["name"], {}), item)
        return list(merged.values())
    return patch


def build(kustomization: dict[str, Any]) -> list[dict[str, Any]]:
    """The documents ``kubectl apply -k deploy/k8s`` would send (resources + patches)."""
    docs = [doc for res in kustomization["resources"]
            for doc in yaml.safe_load_all((K8S / res).read_text()) if doc]  # fmt: skip
    for entry in kustomization.get("patches", []):
        for patch in yaml.safe_load_all((K8S / entry["path"]).read_text()):
            target = [d for d in docs if (d["kind"], d["metadata"]["name"])
                      == (patch["kind"], patch["metadata"]["name"])]  # fmt: skip
            assert len(target) == 1, f"patch {entry['path']} matches {len(target)} resources"
            docs[docs.index(target[0])] = merge(target[0], patch)
    return docs


@pytest.fixture(scope="module")
def kustomization() -> Any:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


@pytest.fixture(scope="module")
def docs(kustomization) -> list[dict[str, Any]]:
    """What ``kubectl apply -k`` sends, plus the manifests applied separately."""
    separate = [doc for path in sorted(APPLIED_SEPARATELY)
                for doc in yaml.safe_load_all(path.read_text()) if doc]  # fmt: skip
    return build(kustomization) + separate


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def pod_spec(doc: dict[str, Any]) -> Any:
    return doc["spec"]["template"]["spec"]


def test_kustomization_lists_every_manifest(kustomization):
    listed = {K8S / res for res in kustomization["resources"]}
    listed |= {K8S / p["path"] for p in kustomization.get("patches", [])}
    on_disk = {p for p in K8S.rglob("*.yaml") if p.parent.name != "config"}
    assert on_disk - {K8S / "kustomization.yaml"} - APPLIED_SEPARATELY == listed
    assert not listed & APPLIED_SEPARATELY
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"


def test_manifests_validate_against_kubernetes_schemas(docs):
    kinds = set()
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        kinds.add(doc["kind"])
    assert {"StatefulSet", "Deployment", "Service", "PodDisruptionBudget", "ConfigMap",
            "Secret", "Job"} <= kinds  # fmt: skip


def test_schema_validation_catches_mistakes(docs):
    broken = copy.deepcopy(find(docs, "StatefulSet", "personaflow-worker"))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["prot"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    scaled = copy.deepcopy(find(docs, "ScaledObject", "personaflow-worker"))
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 5000
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, KEDA_SCALED_OBJECT)


def test_keda_scales_the_worker_statefulset_on_lag_within_partitions(docs):
    scaled = find(docs, "ScaledObject", "personaflow-worker")
    jsonschema.validate(scaled, KEDA_SCALED_OBJECT)
    behavior = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "check"},
           "spec": {"scaleTargetRef": {"kind": "StatefulSet", "name": "x"},
                    "maxReplicas": 1, "behavior": behavior}}  # fmt: skip
    kubernetes_validate.validate(hpa, K8S_VERSION, strict=True)
    ref = scaled["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["apiVersion"]) == ("StatefulSet", "apps/v1")
    find(docs, "StatefulSet", ref["name"])
    env = find(docs, "ConfigMap", "personaflow-env")["data"]
    partitions = int(env.get("PERSONAFLOW_PARTITIONS", DEFAULT_PARTITIONS))
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    assert scaled["spec"]["maxReplicaCount"] == partitions
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka" and set(trigger["metadata"]) <= KAFKA_TRIGGER_KEYS
    from streams.settings import StreamSettings

    group = env.get("PERSONAFLOW_APP_ID", StreamSettings.model_fields["app_id"].default)
    assert trigger["metadata"]["consumerGroup"] == group  # the workers' consumer group
    assert trigger["metadata"]["bootstrapServers"] == env["KAFKA_BOOTSTRAP_SERVERS"]
    assert trigger["metadata"]["allowIdleConsumers"] == "false"


def _container(doc: dict[str, Any]) -> Any:
    [container] = pod_spec(doc)["containers"]
    return container


def _probe(container: dict[str, Any], kind: str) -> tuple[str, Any]:
    get = container[kind]["httpGet"]
    port = get["port"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    return get["path"], named.get(port, port)


def test_worker_statefulset(docs):
    worker = find(docs, "StatefulSet", "personaflow-worker")
    service = find(docs, "Service", worker["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"  # headless
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert worker["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    container = _container(worker)
    assert resolve_cli(command_list(container["args"])) == ["worker"]
    assert _probe(container, "readinessProbe") == ("/readyz", WORKER_PORT)
    assert _probe(container, "livenessProbe") == ("/healthz", WORKER_PORT)
    env = find(docs, "ConfigMap", "personaflow-env")["data"]
    [claim] = worker["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == env["PERSONAFLOW_DATA_DIR"]  # RocksDB on PVC
    assert Path(env["PERSONAFLOW_RULES_FILE"]).parent == Path(mounts["rules"])
    assert "replicas" not in worker["spec"]  # KEDA owns the count
    scaled = find(docs, "ScaledObject", "personaflow-worker")["spec"]
    assert scaled["maxReplicaCount"] <= int(env["PERSONAFLOW_PARTITIONS"])
    annotations = worker["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(WORKER_PORT)
    assert "personaflow.io/config-hash" in annotations


def test_sink_deployment(docs):
    sink = find(docs, "Deployment", "personaflow-sink")
    service = find(docs, "Service", "personaflow-sink")
    labels = sink["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    container = _container(sink)
    assert resolve_cli(command_list(container["args"])) == ["sink"]
    assert _probe(container, "readinessProbe") == ("/readyz", SINK_PORT)
    assert _probe(container, "livenessProbe") == ("/healthz", SINK_PORT)
    env = find(docs, "ConfigMap", "personaflow-env")["data"]
    assert int(env["PERSONAFLOW_SINK_HTTP_PORT"]) == SINK_PORT
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["templates"] == env["PERSONAFLOW_SINK_TEMPLATES_DIR"]


def test_pod_disruption_budgets_select_the_workloads(docs):
    for name in ("personaflow-worker", "personaflow-sink"):
        pdb = find(docs, "PodDisruptionBudget", name)
        workload = next(d for d in docs if d["kind"] in ("StatefulSet", "Deployment")
                        and d["metadata"]["name"] == name)  # fmt: skip
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert find(docs, "PodDisruptionBudget", "personaflow-worker")["spec"]["maxUnavailable"] == 1


def test_env_configmap_and_secret_are_settings(docs, monkeypatch):
    env = find(docs, "ConfigMap", "personaflow-env")["data"]
    secret = find(docs, "Secret", "personaflow-esp")["stringData"]
    assert set(secret.values()) == {"REPLACE_ME"}  # placeholders only, never real keys
    worker_env = {k: v for k, v in env.items() if not k.startswith("PERSONAFLOW_SINK_")}
    check_env("worker", worker_env | {"PERSONAFLOW_WORKER_WEB_HOST": "10.0.0.1"}, monkeypatch,
              "personaflow-env (worker)")  # fmt: skip
    from personaflow.settings import Settings
    from sinks.settings import SinkSettings

    shared = env_names(Settings)
    sink_env = {k: v for k, v in env.items() if k in shared or k.startswith("PERSONAFLOW_SINK_")}
    check_env("sink", sink_env | secret, monkeypatch, "personaflow-env + secret (sink)")
    assert set(env) <= env_names(Settings) | env_names(SinkSettings) | set(worker_env)


def test_volumes_reference_existing_configmaps_and_secrets(docs):
    maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    for doc in docs:
        if doc["kind"] not in ("StatefulSet", "Deployment", "Job"):
            continue
        spec = pod_spec(doc)
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                data = maps[volume["configMap"]["name"]]["data"]
                for item in volume["configMap"].get("items", []):
                    assert item["key"] in data, f"{volume['name']}: no key {item['key']}"
        for container in spec["containers"]:
            mounted = {m["name"] for m in container.get("volumeMounts", [])}
            assert mounted <= {v["name"] for v in spec.get("volumes", [])} | {
                c["metadata"]["name"] for c in doc["spec"].get("volumeClaimTemplates", [])
            }
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in maps
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets


def test_templates_configmap_recreates_the_template_tree(docs):
    sink = find(docs, "Deployment", "personaflow-sink")
    [volume] = [v for v in pod_spec(sink)["volumes"] if v["name"] == "templates"]
    data = find(docs, "ConfigMap", volume["configMap"]["name"])["data"]
    shipped = ROOT / "sinks" / "templates"
    files = {str(p.relative_to(shipped)) for p in shipped.rglob("*.j2")}
    paths = {item["path"]: data[item["key"]] for item in volume["configMap"]["items"]}
    assert files and files <= set(paths)
    for path in files:
        assert paths[path] == (shipped / path).read_text()


def test_rules_configmap_loads_with_the_rules_loader(docs):
    from processors.ruleset import rules_from_text

    data = find(docs, "ConfigMap", "personaflow-rules")["data"]
    rules_from_text(data["personas.yaml"], "deploy/k8s/config/personas.yaml")


def test_generated_files_are_up_to_date():
    done = subprocess.run([sys.executable, str(K8S / "gen_config.py"), "--check"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_alerts_job_names_exist_in_compose_and_kubernetes_scraping(docs):
    import re

    alerts = (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()
    jobs = set(re.findall(r'job="([^"]+)"', alerts))
    assert jobs
    compose = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert jobs <= {job["job_name"] for job in compose["scrape_configs"]}
    kube = yaml.safe_load((ROOT / "deploy/prometheus/prometheus-kubernetes.yml").read_text())
    [pods] = kube["scrape_configs"]
    [job_rule] = [r for r in pods["relabel_configs"] if r.get("target_label") == "job"]
    name_label = "app.kubernetes.io/name"  # Prometheus exposes it with non-alphanumerics as _
    assert job_rule["source_labels"] == [
        "__meta_kubernetes_pod_label_" + re.sub(r"[^A-Za-z0-9_]", "_", name_label)
    ]
    scraped = {
        d["spec"]["template"]["metadata"]["labels"][name_label]
        for d in docs
        if d["kind"] in ("StatefulSet", "Deployment")
        and d["spec"]["template"]["metadata"].get("annotations", {}).get("prometheus.io/scrape")
    }
    assert jobs <= scraped
