"""Values that cannot work are refused when the chart renders, with a message saying why.

Two layers: values.schema.json (types, ranges, unknown keys: Helm checks it before rendering) and
_validate.tpl (combinations: partitions, GPU image, autoscalers, Kafka security, cameras).
"""

from __future__ import annotations

import pytest

from .conftest import INSTALL_TIMEOUT_S, PROFILES, HelmRunner, Renderer, template_args

pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT_S + 120)


def refused(run_helm: HelmRunner, sets: list[str], files: tuple[str, ...] = ()) -> str:
    result = run_helm(*template_args(files, sets))
    assert result.returncode != 0, f"rendered although it should not: {sets}"
    return result.stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ["detector.replicas=9"],
            "vsa: detector replicas 9 exceeds topics.partitions 8",
        ),
        (
            ["detector.autoscaling.keda.enabled=true", "detector.autoscaling.keda.maxReplicas=16"],
            "vsa: detector autoscaling maxReplicas 16 exceeds topics.partitions 8",
        ),
        (
            ["captioner.autoscaling.hpa.enabled=true", "captioner.autoscaling.hpa.maxReplicas=9"],
            "vsa: captioner autoscaling maxReplicas 9 exceeds topics.partitions 8",
        ),
        (
            ["indexer.replicas=12", "topics.partitions=6"],
            "vsa: indexer replicas 12 exceeds topics.partitions 6",
        ),
        (
            ["tracker.replicas=9"],
            "vsa: tracker replicas 9 exceeds topics.partitions 8",
        ),
        (
            ["notifier.enabled=true"],
            "vsa: notifier.enabled is true but it has nowhere to send alerts",
        ),
        (
            ["notifier.enabled=true", "notifier.mqtt.host=mq", "notifier.replicas=9"],
            "vsa: notifier replicas 9 exceeds topics.partitions 8",
        ),
        (
            ["detector.gpu.enabled=true", "gpuImage.tag=0.1.0"],
            'vsa: detector.gpu.enabled is true but the GPU image tag "0.1.0" does not match',
        ),
        (
            ["captioner.gpu.enabled=true", "gpuImage.tag=latest"],
            'vsa: captioner.gpu.enabled is true but the GPU image tag "latest" does not match',
        ),
        (
            ["detector.gpu.enabled=true", "detector.gpu.count=2"],
            "vsa: detector.gpu.count is 2: a detector pod uses one GPU",
        ),
        (
            ["detector.backend.type=tensorrt"],
            "vsa: detector.backend.type tensorrt runs on a GPU: set detector.gpu.enabled=true",
        ),
        (
            ["detector.autoscaling.hpa.enabled=true", "detector.autoscaling.keda.enabled=true"],
            "vsa: detector.autoscaling.hpa.enabled and detector.autoscaling.keda.enabled are "
            "both true",
        ),
        (
            [
                "indexer.autoscaling.hpa.enabled=true",
                "indexer.autoscaling.hpa.minReplicas=4",
                "indexer.autoscaling.hpa.maxReplicas=2",
            ],
            "vsa: indexer.autoscaling.hpa.minReplicas (4) is above maxReplicas (2)",
        ),
        (
            ["kafka.securityProtocol=SASL_SSL"],
            "vsa: kafka.securityProtocol is SASL_SSL but kafka.sasl.mechanism is empty",
        ),
        (
            ["kafka.securityProtocol=SASL_SSL", "kafka.sasl.mechanism=PLAIN"],
            "vsa: kafka.securityProtocol is SASL_SSL but kafka.sasl.passwordSecret.name is empty",
        ),
        (
            [
                "kafka.securityProtocol=SASL_PLAINTEXT",
                "kafka.sasl.mechanism=PLAIN",
                "kafka.sasl.passwordSecret.name=s",
            ],
            "vsa: SASL needs a user name",
        ),
        (
            ["kafka.sasl.mechanism=PLAIN"],
            "vsa: kafka.sasl.mechanism is PLAIN but kafka.securityProtocol is PLAINTEXT",
        ),
        (
            ["kafka.tls.caSecret.name=ca"],
            "vsa: kafka.tls secrets are set but kafka.securityProtocol is PLAINTEXT",
        ),
        (
            [
                "kafka.securityProtocol=SASL_SSL",
                "kafka.sasl.mechanism=SCRAM-SHA-512",
                "kafka.sasl.username=vsa",
                "kafka.sasl.passwordSecret.name=s",
                "detector.autoscaling.keda.enabled=true",
            ],
            "vsa: detector.autoscaling.keda reads the SASL user name from a Secret",
        ),
        (
            ["cameras:=[]"],
            "vsa: ingest.enabled is true but there are no cameras",
        ),
        (
            ['ingest.shards:=[{"name": "b", "cameras": [{"camera_id": "demo-0", "url": "x"}]}]'],
            'vsa: camera_id "demo-0" is in ingest shard (the top-level cameras list) and in '
            "shard b",
        ),
        (
            ['ingest.shards:=[{"name": "b", "cameras": []}]'],
            "vsa: ingest shard b has no cameras",
        ),
        (
            ["ingest.fromCameraConfig=true"],
            "vsa: ingest.fromCameraConfig takes the cameras from the camera-config topic",
        ),
        (
            ["cameras:=[]", "ingest.fromCameraConfig=true", "ingest.replicas=9"],
            "vsa: ingest replicas 9 exceeds topics.partitions 8",
        ),
        (
            ["api.enabled=true"],
            "vsa: api.enabled is true but api.auth.mode is none: the API listens on the pod's "
            "address and refuses to serve without credentials",
        ),
        (
            ["api.enabled=true", "api.auth.mode=api_key", "api.console=false"],
            "vsa: api.auth.mode is api_key but api.auth.apiKeySecret.name is empty",
        ),
        (
            ["api.enabled=true", "api.auth.mode=api_key", "api.auth.apiKeySecret.name=k"],
            "vsa: api.console is true but api.auth.mode is api_key: a browser cannot send an API "
            "key",
        ),
        (
            ["api.enabled=true", "api.auth.mode=basic", "api.auth.username=operator"],
            "vsa: api.auth.mode is basic but api.auth.passwordSecret.name is empty",
        ),
        (
            ["api.enabled=true", "api.auth.mode=basic", "api.auth.passwordSecret.name=p"],
            "vsa: api.auth.mode is basic but it has no user name",
        ),
    ],
    ids=lambda value: value[0] if isinstance(value, list) else None,
)
def test_values_that_cannot_work_are_refused(
    run_helm: HelmRunner, sets: list[str], message: str
) -> None:
    stderr = refused(run_helm, sets)
    assert message in stderr, stderr


def test_partition_check_can_be_turned_off(render: Renderer) -> None:
    rendered = render(sets=["detector.replicas=9", "validation.partitions=false"])
    assert rendered.get("Deployment", "vsa-detector")["spec"]["replicas"] == 9


def test_an_existing_profile_becomes_invalid_when_partitions_shrink(run_helm: HelmRunner) -> None:
    stderr = refused(run_helm, ["topics.partitions=8"], PROFILES["autoscaling"])
    assert "vsa: detector autoscaling maxReplicas 12 exceeds topics.partitions 8" in stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["detector.replicas=two"], "at '/detector/replicas': got string, want integer"),
        (["tracker.replicas=-1"], "at '/tracker/replicas': minimum: got -1, want 0"),
        (["topics.partitions=0"], "at '/topics/partitions': minimum: got 0, want 1"),
        (["detector.replicaz=2"], "at '/detector': additional properties 'replicaz' not allowed"),
        (
            ["kafka.securityProtocol=TLS"],
            "at '/kafka/securityProtocol': value must be one of",
        ),
        (["detector.gpu.enabled=yes"], "at '/detector/gpu/enabled': got string, want boolean"),
        (
            ['cameras:=[{"camera_id": "gate", "url": "rtsp://x", "fsp": 5}]'],
            "at '/cameras/0': additional properties 'fsp' not allowed",
        ),
        (
            ['cameras:=[{"camera_id": "bad id", "url": "rtsp://x"}]'],
            "at '/cameras/0/camera_id'",
        ),
        (["opensearch.url=opensearch:9200"], "at '/opensearch/url'"),
        (["indexer.knnEngine=annoy"], "at '/indexer/knnEngine': value must be one of"),
        (["api.enabled=yes"], "at '/api/enabled': got string, want boolean"),
        (["api.port=http"], "at '/api/port': got string, want integer"),
        (["api.port=0"], "at '/api/port': minimum: got 0, want 1"),
        (["api.auth.mode=token"], "at '/api/auth/mode': value must be one of"),
        # Credentials are never values: there is no key to put a password or an API key in.
        (["api.auth.password=hunter2hunter2"], "at '/api/auth': additional properties 'password'"),
        (["api.auth.apiKey=0123456789abcdef"], "at '/api/auth': additional properties 'apiKey'"),
        (["api.ingress.hostname=x"], "at '/api/ingress': additional properties 'hostname'"),
        (["api.ingress.host=https://vsa.example.com"], "at '/api/ingress/host'"),
        (
            ['api.ingress.tls:=[{"secretName": "t", "host": "vsa.example.com"}]'],
            "at '/api/ingress/tls/0': additional properties 'host' not allowed",
        ),
        (["api.allowOpenExposure=yes"], "at '/api/allowOpenExposure': got string, want boolean"),
    ],
    ids=lambda value: value[0] if isinstance(value, list) else None,
)
def test_schema_rejects_wrong_values(run_helm: HelmRunner, sets: list[str], message: str) -> None:
    stderr = refused(run_helm, sets)
    assert "values don't meet the specifications of the schema" in stderr, stderr
    assert message in stderr, stderr


def test_the_api_renders_with_credentials_or_open_exposure_only(render: Renderer) -> None:
    """The refusals above leave exactly these ways to turn the API on."""
    for sets in (
        ["api.auth.mode=basic", "api.auth.username=op", "api.auth.passwordSecret.name=p"],
        ["api.auth.mode=api_key", "api.auth.apiKeySecret.name=k", "api.console=false"],
        ["api.allowOpenExposure=true"],
    ):
        assert "Deployment/vsa-api" in render(sets=["api.enabled=true", *sets]).names(), sets
