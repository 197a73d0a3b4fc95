"""The chart renders valid Kubernetes objects, and its logic shows in what it renders.

Every profile (default values, tests' GPU profile, autoscaling profile) is linted, rendered and
validated against the Kubernetes 1.37 JSON schemas shipped in the PyPI package
``kubernetes-validate`` (strict: unknown fields are errors); the custom resources (KEDA,
Prometheus operator) against the minimal schemas in crd_schemas/.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from .conftest import (
    CHART,
    INSTALL_TIMEOUT_S,
    NAMESPACE,
    PROFILES,
    HelmRunner,
    Rendered,
    Renderer,
)

pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT_S + 120)

KUBERNETES_VERSION = "1.37"
CRD_SCHEMAS = Path(__file__).parent / "crd_schemas"
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
}
SERVICES = ("ingest", "detector", "tracker", "captioner", "indexer")
PORTS = {"ingest": 9101, "detector": 9102, "tracker": 9103, "captioner": 9104, "indexer": 9105}
GPU_SERVICES = ("detector", "captioner")


def name(component: str) -> str:
    return f"vsa-{component}"


def workload(rendered: Rendered, component: str) -> dict[str, Any]:
    kind = "StatefulSet" if component == "tracker" else "Deployment"
    return rendered.get(kind, name(component))


def container(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod's container; the hook Job's first one (topics; the second sets up indices)."""
    containers = obj["spec"]["template"]["spec"]["containers"]
    assert len(containers) == (2 if obj["kind"] == "Job" and len(containers) > 1 else 1)
    return dict(containers[0])


def env_of(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Environment of the pod's container by name; duplicates are an error."""
    env = container(obj)["env"]
    names = [item["name"] for item in env]
    assert len(names) == len(set(names)), f"duplicate env: {names}"
    return {item["name"]: item for item in env}


def pod_objects(rendered: Rendered) -> list[dict[str, Any]]:
    return [doc for doc in rendered.docs if doc["kind"] in ("Deployment", "StatefulSet", "Job")]


# -- lint and schemas ------------------------------------------------------------------------


@pytest.mark.parametrize("profile_name", sorted(PROFILES))
def test_helm_lint_strict(run_helm: HelmRunner, profile_name: str) -> None:
    args = ["lint", "--strict", str(CHART)]
    for values in PROFILES[profile_name]:
        args += ["--values", str(CHART / values)]
    result = run_helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_every_manifest_matches_the_kubernetes_schemas(profile: tuple[str, Rendered]) -> None:
    profile_name, rendered = profile
    assert rendered.docs, f"{profile_name}: nothing rendered"
    for doc in rendered.docs:
        what = f"{profile_name}: {doc['kind']}/{doc['metadata']['name']}"
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            group_version = doc["apiVersion"].replace("/", "_")
            schema = json.loads((CRD_SCHEMAS / f"{group_version}_{doc['kind']}.json").read_text())
            try:
                jsonschema.validate(doc, schema)
            except jsonschema.ValidationError as exc:
                pytest.fail(f"{what}: {exc.json_path}: {exc.message}")
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{what}: {path}: {exc.message}")


def test_kubernetes_validate_has_the_version_we_claim() -> None:
    """The schemas are the ones of a current Kubernetes, not an old fallback."""
    assert KUBERNETES_VERSION in {
        kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions()
    }


def test_the_schema_check_catches_a_bad_manifest(render: Renderer) -> None:
    """Guard against a validator that accepts anything: a misspelt field must fail."""
    doc = json.loads(json.dumps(workload(render(), "detector")))
    doc["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


# -- what the default values deploy ----------------------------------------------------------


def test_default_objects(render: Renderer) -> None:
    rendered = render()
    expected = {
        "ConfigMap/vsa-config",
        "ServiceAccount/vsa",
        "Job/vsa-topics",
        "StatefulSet/vsa-tracker",
        *(f"Deployment/vsa-{c}" for c in ("ingest", "detector", "captioner", "indexer")),
        *(f"Service/vsa-{c}" for c in SERVICES),
        *(f"PodDisruptionBudget/vsa-{c}" for c in ("detector", "tracker", "captioner", "indexer")),
    }
    assert set(rendered.names()) == expected
    for doc in rendered.docs:
        assert doc["metadata"].get("namespace") in (None, NAMESPACE)


def test_default_replicas_and_images(render: Renderer) -> None:
    rendered = render()
    for component in SERVICES:
        obj = workload(rendered, component)
        assert obj["spec"]["replicas"] == 1, component
        assert container(obj)["image"] == "vsa:0.1.0", component
        resources = container(obj)["resources"]
        assert "nvidia.com/gpu" not in resources.get("limits", {}), component
        assert "nodeSelector" not in obj["spec"]["template"]["spec"], component


def test_commands_and_config_files(render: Renderer) -> None:
    rendered = render()
    for component in SERVICES:
        args = container(workload(rendered, component))["args"]
        assert args[:3] == [component, "--config", f"/etc/vsa/config/{component}.yaml"]
    ingest_args = container(workload(rendered, "ingest"))["args"]
    assert ingest_args[3:5] == ["--cameras-file", "/etc/vsa/config/cameras.yaml"]
    config = rendered.get("ConfigMap", "vsa-config")["data"]
    cameras = yaml.safe_load(config["cameras.yaml"])["cameras"]
    assert [c["camera_id"] for c in cameras] == ["demo-0"]
    assert cameras[0]["url"] == "/opt/vsa/cache/data/vtest.avi"
    for component in SERVICES:
        assert yaml.safe_load(config[f"{component}.yaml"]) == {}


def test_probes_ports_and_scrape_annotations(profile: tuple[str, Rendered]) -> None:
    _, rendered = profile
    for component in SERVICES:
        obj = workload(rendered, component)
        c = container(obj)
        port = PORTS[component]
        assert c["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        # The process listens where the probes look: the chart sets the port explicitly.
        assert env_of(obj)[f"VSA_{component.upper()}_METRICS_PORT"]["value"] == str(port)
        annotations = obj["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(port)
        assert annotations["prometheus.io/path"] == "/metrics"
        service = rendered.get("Service", name(component))
        assert service["spec"]["ports"][0]["port"] == port
        assert service["spec"]["ports"][0]["targetPort"] == "metrics"
        pod_labels = obj["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items(), component


def test_security_context_everywhere(profile: tuple[str, Rendered]) -> None:
    profile_name, rendered = profile
    for obj in pod_objects(rendered):
        what = f"{profile_name}: {obj['kind']}/{obj['metadata']['name']}"
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, what
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, what
        assert pod["automountServiceAccountToken"] is False, what
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, what
            assert sc["runAsUser"] == 10001, what
            assert sc["readOnlyRootFilesystem"] is True, what
            assert sc["allowPrivilegeEscalation"] is False, what
            assert sc["capabilities"] == {"drop": ["ALL"]}, what
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, what
            # Read-only root: /tmp is a volume and the cache/temp variables point there.
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert mounts["/tmp"] == "tmp", what
            env = {e["name"]: e.get("value") for e in c["env"]}
            assert env["TMPDIR"] == "/tmp", what
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes["tmp"], what


def test_tracker_statefulset_keeps_rocksdb_on_a_volume(render: Renderer) -> None:
    tracker = workload(render(), "tracker")
    spec = tracker["spec"]
    assert spec["serviceName"] == "vsa-tracker"
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    c = container(tracker)
    assert {"name": "data", "mountPath": "/var/lib/vsa/tracker"} in c["volumeMounts"]
    # Faust's default data directory is relative: the working directory is the volume.
    assert c["workingDir"] == "/var/lib/vsa/tracker"
    assert spec["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    headless = render().get("Service", "vsa-tracker")
    assert headless["spec"]["clusterIP"] == "None"


def test_tracker_reads_the_chart_rules_only_when_there_are_some(render: Renderer) -> None:
    assert "--rules" not in container(workload(render(), "tracker"))["args"]
    rules = render(sets=["cameraRules.camera_id=gate", "cameraRules.keyframe_interval_s=5"])
    args = container(workload(rules, "tracker"))["args"]
    assert args[args.index("--rules") + 1] == "/etc/vsa/config/camera-rules.yaml"
    rendered_rules = yaml.safe_load(
        rules.get("ConfigMap", "vsa-config")["data"]["camera-rules.yaml"]
    )
    assert rendered_rules == {"camera_id": "gate", "keyframe_interval_s": 5}


def test_ingest_is_one_pod_per_shard_and_recreated(render: Renderer) -> None:
    ingest = workload(render(), "ingest")
    assert ingest["spec"]["replicas"] == 1
    assert ingest["spec"]["strategy"] == {"type": "Recreate"}


def test_ingest_from_camera_config_is_one_group_of_replicas(render: Renderer) -> None:
    rendered = render(sets=["cameras:=[]", "ingest.fromCameraConfig=true", "ingest.replicas=3"])
    ingest = workload(rendered, "ingest")
    assert ingest["spec"]["replicas"] == 3
    assert "strategy" not in ingest["spec"], "a rolling update is safe: cameras are handed over"
    assert container(ingest)["args"][3] == "--from-camera-config"
    assert env_of(ingest)["VSA_INGEST_GROUP_ID"]["value"] == "vsa-ingest"
    assert not [k for k in rendered.get("ConfigMap", "vsa-config")["data"] if "cameras" in k]


def test_topics_hook_job(profile: tuple[str, Rendered]) -> None:
    profile_name, rendered = profile
    job = rendered.get("Job", "vsa-topics")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    assert int(annotations["helm.sh/hook-weight"]) < 0
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    # The hook runs before the chart's objects exist: no chart ServiceAccount or ConfigMap.
    assert "serviceAccountName" not in pod
    assert all("configMap" not in v for v in pod["volumes"])
    c = pod["containers"][0]
    assert c["args"] == ["topics", "create"]
    assert c["image"].endswith(":0.1.0")
    env = {e["name"]: e for e in c["env"]}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for files in PROFILES[profile_name]:
        values = merge(values, yaml.safe_load((CHART / files).read_text()))
    topics = values["topics"]
    assert env["VSA_TOPICS_PARTITIONS"]["value"] == str(topics["partitions"])
    assert env["VSA_TOPICS_NAMES__PREFIX"]["value"] == topics["prefix"]
    assert env["VSA_TOPICS_REPLICATION_FACTOR"]["value"] == str(topics["replicationFactor"])
    assert env["VSA_TOPICS_FRAMES_RETENTION_MS"]["value"] == str(topics["framesRetentionMs"])
    assert env["VSA_TOPICS_RESULTS_RETENTION_MS"]["value"] == str(topics["resultsRetentionMs"])
    assert env["VSA_TOPICS_EVENTS_RETENTION_MS"]["value"] == str(topics["eventsRetentionMs"])
    assert env["KAFKA_BOOTSTRAP_SERVERS"]["value"] == values["kafka"]["bootstrapServers"]


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's values merge: maps merge recursively, everything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def test_a_camera_change_rolls_only_ingest(render: Renderer) -> None:
    before = render()
    after = render(sets=['cameras:=[{"camera_id": "gate", "url": "rtsp://10.0.0.5/s"}]'])

    def checksum(rendered: Rendered, component: str) -> str:
        meta = workload(rendered, component)["spec"]["template"]["metadata"]
        return str(meta["annotations"]["checksum/config"])

    assert checksum(before, "ingest") != checksum(after, "ingest")
    for component in ("detector", "tracker", "captioner", "indexer"):
        assert checksum(before, component) == checksum(after, component), component


# -- GPU profile -----------------------------------------------------------------------------


def test_gpu_requests_node_selection_and_image(render: Renderer) -> None:
    rendered = render(PROFILES["gpu"])
    for component in GPU_SERVICES:
        obj = workload(rendered, component)
        pod = obj["spec"]["template"]["spec"]
        c = container(obj)
        assert c["resources"]["limits"]["nvidia.com/gpu"] == 1, component
        assert c["image"] == "registry.example.com/vsa:0.1.0-gpu", component
        assert pod["nodeSelector"]["nvidia.com/gpu.present"] == "true", component
        assert {
            "key": "nvidia.com/gpu",
            "operator": "Exists",
            "effect": "NoSchedule",
        } in pod["tolerations"], component
    detector = workload(rendered, "detector")
    assert detector["spec"]["replicas"] == 4
    assert detector["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"
    # The surge pod of a rolling update would wait for a GPU that is not free.
    assert detector["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    env = env_of(detector)
    assert env["VSA_DETECTOR_MODEL"]["value"] == "/models/yolov8s.onnx"
    assert json.loads(env["VSA_DETECTOR_BACKEND"]["value"]) == {"type": "auto"}
    assert env["VSA_DETECTOR_MAX_BATCH"]["value"] == "64"
    mounts = container(detector)["volumeMounts"]
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in mounts
    for component in ("ingest", "tracker", "indexer"):
        obj = workload(rendered, component)
        assert container(obj)["image"] == "registry.example.com/vsa:0.1.0", component
        assert "nvidia.com/gpu" not in container(obj)["resources"].get("limits", {})
        assert "nodeSelector" not in obj["spec"]["template"]["spec"], component


def test_kafka_and_opensearch_secrets_wiring(render: Renderer) -> None:
    rendered = render(PROFILES["gpu"])
    for obj in pod_objects(rendered):
        env = {e["name"]: e for e in container(obj)["env"]}
        assert env["KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
        assert env["KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
        assert env["KAFKA_SASL_USERNAME"]["value"] == "vsa"
        assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "vsa-kafka-user",
            "key": "password",
        }
        assert "value" not in env["KAFKA_SASL_PASSWORD"]
        assert env["KAFKA_SSL_CA_LOCATION"]["value"] == "/etc/vsa/kafka-ca/ca.crt"
        volumes = {v["name"]: v for v in obj["spec"]["template"]["spec"]["volumes"]}
        assert volumes["kafka-ca"]["secret"]["secretName"] == "vsa-kafka-cluster-ca-cert"
        mounts = {m["name"]: m for m in container(obj)["volumeMounts"]}
        assert mounts["kafka-ca"]["mountPath"] == "/etc/vsa/kafka-ca"
        searches = obj["metadata"]["name"] in ("vsa-indexer", "vsa-api")
        assert ("OPENSEARCH_PASSWORD" in env) == searches, obj["metadata"]["name"]
    for component in ("indexer", "api"):  # the two OpenSearch clients
        obj = workload(rendered, component)
        os_env = env_of(obj)
        for var, key in (("OPENSEARCH_USERNAME", "username"), ("OPENSEARCH_PASSWORD", "password")):
            assert os_env[var]["valueFrom"]["secretKeyRef"] == {
                "name": "vsa-opensearch-credentials",
                "key": key,
            }
        assert os_env["OPENSEARCH_URL"]["value"] == "https://vsa-search.opensearch:9200"
        assert os_env["OPENSEARCH_CA_CERTS"]["value"] == "/etc/vsa/opensearch-ca/ca.crt"
        volumes = {v["name"]: v for v in obj["spec"]["template"]["spec"]["volumes"]}
        assert volumes["opensearch-ca"]["secret"]["secretName"] == "vsa-opensearch-http-ca"
        mounts = {m["name"]: m["mountPath"] for m in container(obj)["volumeMounts"]}
        assert mounts["opensearch-ca"] == "/etc/vsa/opensearch-ca", component
    # The hook's indices container reads the same CA file (its OPENSEARCH_CA_CERTS).
    hook = rendered.get("Job", "vsa-topics")["spec"]["template"]["spec"]
    indices = hook["containers"][1]
    ca_file = {e["name"]: e.get("value") for e in indices["env"]}["OPENSEARCH_CA_CERTS"]
    mounts = {m["name"]: m["mountPath"] for m in indices["volumeMounts"]}
    assert ca_file.startswith(mounts["opensearch-ca"] + "/")
    volumes = {v["name"]: v for v in hook["volumes"]}
    assert volumes["opensearch-ca"]["secret"]["secretName"] == "vsa-opensearch-http-ca"
    assert env_of(workload(rendered, "indexer"))["VSA_INDEXER_HNSW__ENGINE"]["value"] == "faiss"
    assert env_of(workload(rendered, "api"))["VSA_SEARCH_HNSW__ENGINE"]["value"] == "faiss"


def test_topic_prefix_and_consumer_groups(render: Renderer) -> None:
    rendered = render(PROFILES["gpu"])
    for component in SERVICES:
        env = env_of(workload(rendered, component))
        assert env[f"VSA_{component.upper()}_TOPICS__PREFIX"]["value"] == "site-a."
    for component in ("detector", "captioner", "indexer"):
        env = env_of(workload(rendered, component))
        assert env[f"VSA_{component.upper()}_GROUP_ID"]["value"] == f"site-a.vsa-{component}"


def test_ingest_shards_and_camera_rules(render: Renderer) -> None:
    rendered = render(PROFILES["gpu"])
    config = rendered.get("ConfigMap", "vsa-config")["data"]
    main = rendered.get("Deployment", "vsa-ingest")
    shard = rendered.get("Deployment", "vsa-ingest-lot-b")
    assert container(main)["args"][4] == "/etc/vsa/config/cameras.yaml"
    assert container(shard)["args"][4] == "/etc/vsa/config/cameras-lot-b.yaml"
    assert [c["camera_id"] for c in yaml.safe_load(config["cameras.yaml"])["cameras"]] == [
        "gate",
        "lobby",
    ]
    assert [c["camera_id"] for c in yaml.safe_load(config["cameras-lot-b.yaml"])["cameras"]] == [
        "lot-b-1",
        "lot-b-2",
    ]
    assert container(shard)["resources"]["requests"]["cpu"] == "2"
    # Two Deployments must not select each other's pods.
    selectors = [d["spec"]["selector"]["matchLabels"] for d in (main, shard)]
    assert selectors[0] != selectors[1]
    rules = yaml.safe_load(config["camera-rules.yaml"])
    assert rules["cameras"][0]["camera_id"] == "gate"
    assert yaml.safe_load(config["captioner.yaml"]) == {
        "backend": "blip",
        "blip_model_dir": "/models/blip-base",
    }


def test_service_monitor_and_network_policy(render: Renderer) -> None:
    rendered = render(PROFILES["gpu"])
    monitor = rendered.get("ServiceMonitor", "vsa")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = [
        svc["metadata"]["name"]
        for svc in rendered.of_kind("Service")
        if selector.items() <= svc["metadata"]["labels"].items()
    ]
    assert sorted(selected) == sorted(name(c) for c in (*SERVICES, "api"))
    # Each Service's metrics are on one endpoint: port "metrics", or the API's "http".
    endpoints = {e["port"]: e["path"] for e in monitor["spec"]["endpoints"]}
    assert endpoints == {"metrics": "/metrics", "http": "/metrics"}
    for svc in rendered.of_kind("Service"):
        if svc["metadata"]["name"] in selected:
            assert {p["name"] for p in svc["spec"]["ports"]} & set(endpoints), svc
    policy = rendered.get("NetworkPolicy", "vsa")
    metrics_rule, api_rule = policy["spec"]["ingress"]
    ports = {p["port"] for p in metrics_rule["ports"]}
    assert ports == set(PORTS.values())
    assert api_rule["ports"] == [{"port": 8088, "protocol": "TCP"}]
    assert [peer["namespaceSelector"]["matchLabels"] for peer in api_rule["from"]] == [
        {"kubernetes.io/metadata.name": "ingress-nginx"},
        {"kubernetes.io/metadata.name": "monitoring"},
    ]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    egress_ports = [p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]]
    assert 53 in egress_ports
    assert 9093 in egress_ports


# -- autoscaling profile ---------------------------------------------------------------------


def test_keda_scaled_objects_follow_the_consumer_groups(render: Renderer) -> None:
    rendered = render(PROFILES["autoscaling"])
    for component, topic, max_replicas in (("detector", "frames", 12), ("indexer", "captions", 3)):
        deployment = workload(rendered, component)
        # The autoscaler owns the replica count: the Deployment must not reset it on upgrade.
        assert "replicas" not in deployment["spec"], component
        scaled = rendered.get("ScaledObject", name(component))
        assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        assert scaled["spec"]["maxReplicaCount"] == max_replicas
        (trigger,) = scaled["spec"]["triggers"]
        assert trigger["type"] == "kafka"
        meta = trigger["metadata"]
        group = env_of(deployment)[f"VSA_{component.upper()}_GROUP_ID"]["value"]
        assert meta["consumerGroup"] == group
        assert meta["topic"] == topic
        assert meta["bootstrapServers"] == "kafka.confluent.svc.cluster.local:9071"
        assert meta["sasl"] == "scram_sha256"
        assert meta["tls"] == "enable"
        assert meta["allowIdleConsumers"] == "false"
        assert trigger["authenticationRef"] == {"name": "vsa-kafka"}
    detector_trigger = rendered.get("ScaledObject", "vsa-detector")["spec"]["triggers"][0]
    assert detector_trigger["metadata"]["lagThreshold"] == "300"
    auth = rendered.get("TriggerAuthentication", "vsa-kafka")
    refs = {ref["parameter"]: (ref["name"], ref["key"]) for ref in auth["spec"]["secretTargetRef"]}
    assert refs == {
        "username": ("vsa-kafka-credentials", "username"),
        "password": ("vsa-kafka-credentials", "password"),
        "ca": ("kafka-ca", "ca.crt"),
        "cert": ("vsa-kafka-client-tls", "tls.crt"),
        "key": ("vsa-kafka-client-tls", "tls.key"),
    }
    assert not [h for h in rendered.of_kind("HorizontalPodAutoscaler") if "detector" in str(h)]


def test_hpa_is_the_cpu_fallback(render: Renderer) -> None:
    rendered = render(PROFILES["autoscaling"])
    (hpa,) = rendered.of_kind("HorizontalPodAutoscaler")
    assert hpa["metadata"]["name"] == "vsa-captioner"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "vsa-captioner",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 6)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["averageUtilization"] == 75
    assert "replicas" not in workload(rendered, "captioner")["spec"]
    assert not rendered.of_kind("ScaledObject") or all(
        s["metadata"]["name"] != "vsa-captioner" for s in rendered.of_kind("ScaledObject")
    )


def test_mutual_tls_files_and_librdkafka_extras(render: Renderer) -> None:
    rendered = render(PROFILES["autoscaling"])
    detector = workload(rendered, "detector")
    env = env_of(detector)
    assert env["KAFKA_SSL_CERTIFICATE_LOCATION"]["value"] == "/etc/vsa/kafka-client/tls.crt"
    assert env["KAFKA_SSL_KEY_LOCATION"]["value"] == "/etc/vsa/kafka-client/tls.key"
    assert json.loads(env["KAFKA_EXTRA"]["value"]) == {"socket.keepalive.enable": "true"}
    assert env["KAFKA_SASL_USERNAME"]["valueFrom"]["secretKeyRef"] == {
        "name": "vsa-kafka-credentials",
        "key": "username",
    }
    volumes = {v["name"]: v for v in detector["spec"]["template"]["spec"]["volumes"]}
    items = volumes["kafka-client"]["secret"]["items"]
    assert {item["key"] for item in items} == {"tls.crt", "tls.key"}


def test_large_numbers_are_not_rendered_in_exponent_form(render: Renderer) -> None:
    """Values files give numbers as floats: 3600000 must not become "3.6e+06" in a string."""
    rendered = render(
        PROFILES["autoscaling"],
        sets=[
            "detector.autoscaling.keda.lagThreshold:=5000000",
            "topics.framesRetentionMs:=7200000",
        ],
    )
    trigger = rendered.get("ScaledObject", "vsa-detector")["spec"]["triggers"][0]
    assert trigger["metadata"]["lagThreshold"] == "5000000"
    job_env = env_of(rendered.get("Job", "vsa-topics"))
    assert job_env["VSA_TOPICS_FRAMES_RETENTION_MS"]["value"] == "7200000"


# -- the HTTP API and console ----------------------------------------------------------------


def test_the_api_is_off_by_default_and_its_ingress_too(render: Renderer) -> None:
    assert not [n for n in render().names() if "api" in n.split("/")[1]]
    rendered = render(sets=["api.enabled=true", "api.allowOpenExposure=true"])
    assert {"Deployment/vsa-api", "Service/vsa-api"} <= set(rendered.names())
    assert not rendered.of_kind("Ingress")
    assert "PodDisruptionBudget/vsa-api" not in rendered.names()
    assert yaml.safe_load(rendered.get("ConfigMap", "vsa-config")["data"]["api.yaml"]) == {}


def test_the_api_pod_service_and_ingress(render: Renderer) -> None:
    rendered = render(PROFILES["gpu"])
    api = workload(rendered, "api")
    c = container(api)
    assert api["spec"]["replicas"] == 2
    # No GPU, no partition to wait for: a new pod comes up before an old one goes.
    assert api["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert c["image"] == "registry.example.com/vsa:0.1.0"
    assert c["args"][0] == "console"
    assert c["ports"] == [{"name": "http", "containerPort": 8088, "protocol": "TCP"}]
    # The API's own probe paths (services/api/routes.py ops_routes), on its HTTP port.
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    annotations = api["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "8088"
    env = env_of(api)
    assert "VSA_API_METRICS_PORT" not in env
    assert env["VSA_API_AUTH__MODE"]["value"] == "basic"
    assert env["VSA_API_AUTH__USERNAME"]["value"] == "operator"
    assert env["VSA_API_AUTH__PASSWORD"] == {
        "name": "VSA_API_AUTH__PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "vsa-console-login", "key": "password"}},
    }
    assert "VSA_API_ALLOW_OPEN_EXPOSURE" not in env
    service = rendered.get("Service", "vsa-api")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8088, "targetPort": "http", "protocol": "TCP"}
    ]
    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    ingress = rendered.get("Ingress", "vsa-api")
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"hosts": ["vsa.example.com"], "secretName": "vsa-console-tls"}]
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    (rule,) = spec["rules"]
    assert rule["host"] == "vsa.example.com"
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    assert path["backend"]["service"] == {"name": "vsa-api", "port": {"name": "http"}}
    pdb = rendered.get("PodDisruptionBudget", "vsa-api")
    assert pdb["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


def test_the_api_without_the_console(render: Renderer) -> None:
    sets = [
        "api.enabled=true",
        "api.console=false",
        "api.auth.mode=api_key",
        "api.auth.apiKeySecret.name=vsa-api-key",
        "api.ingress.enabled=true",
    ]
    rendered = render(sets=sets)
    api = workload(rendered, "api")
    assert container(api)["args"][0] == "search-api"
    assert env_of(api)["VSA_API_AUTH__API_KEY"] == {
        "name": "VSA_API_AUTH__API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "vsa-api-key", "key": "api-key"}},
    }
    ingress = rendered.get("Ingress", "vsa-api")
    kubernetes_validate.validate(ingress, KUBERNETES_VERSION, strict=True)
    assert "host" not in ingress["spec"]["rules"][0]
    assert "tls" not in ingress["spec"]
    assert "ingressClassName" not in ingress["spec"]
