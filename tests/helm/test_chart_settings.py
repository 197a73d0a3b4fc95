"""What the chart hands each service is accepted by that service's real settings classes.

For every profile and every service whose code exists, the rendered environment (Secret
references replaced by placeholders) and the rendered `--config` file are loaded with the same
`load_settings` the service uses, and the cameras files with ingest's own loader; so a key the
chart writes that a service does not know, or a value it cannot parse, fails here.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from vsa.runtime.settings import KafkaSettings, OpenSearchSettings, load_settings
from vsa.runtime.topics import TopicsSettings
from vsa.services.ingest.config import load_cameras_file

from .conftest import INSTALL_TIMEOUT_S, Rendered, Renderer
from .test_chart_render import KUBERNETES_VERSION

pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT_S + 120)

#: Settings class of each service: (module, class). A module that does not exist yet (a service
#: still being written) is left out until it does.
SETTINGS = {
    "ingest": ("vsa.services.ingest.config", "IngestSettings"),
    "detector": ("vsa.services.detector.config", "DetectorSettings"),
    "captioner": ("vsa.services.captioner.config", "CaptionerSettings"),
    "indexer": ("vsa.services.indexer.settings", "IndexerSettings"),
    "tracker": ("vsa.services.tracker.config", "TrackerSettings"),
    "notifier": ("vsa.services.notifier.config", "NotifierSettings"),
}
PLACEHOLDER = "from-a-secret"
PREFIXES = ("KAFKA_", "OPENSEARCH_", "VSA_")


def settings_class(component: str) -> type[Any] | None:
    module_name, class_name = SETTINGS[component]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        return None
    return getattr(module, class_name, None)


def use_env(monkeypatch: pytest.MonkeyPatch, container: dict[str, Any]) -> dict[str, str]:
    """Make the process environment the container's (Secrets as placeholders)."""
    for name in list(os.environ):
        if name.startswith(PREFIXES):
            monkeypatch.delenv(name)
    env = {item["name"]: item.get("value", PLACEHOLDER) for item in container["env"]}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_services_accept_the_rendered_settings(
    profile: tuple[str, Rendered], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    profile_name, rendered = profile
    config = rendered.get("ConfigMap", "vsa-config")["data"]
    checked = []
    for obj in rendered.docs:
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        container = obj["spec"]["template"]["spec"]["containers"][0]
        component = container["name"]
        cls = settings_class(component)
        if cls is None:
            continue
        env = use_env(monkeypatch, container)
        config_file = tmp_path / f"{component}.yaml"
        config_file.write_text(config[f"{component}.yaml"])
        settings = load_settings(cls, config_file)
        assert settings.metrics_port == int(env[f"VSA_{component.upper()}_METRICS_PORT"])
        assert settings.kafka == load_settings(KafkaSettings)
        assert settings.kafka.bootstrap_servers == env["KAFKA_BOOTSTRAP_SERVERS"]
        assert settings.topics.prefix == env[f"VSA_{component.upper()}_TOPICS__PREFIX"]
        if component != "ingest":
            assert settings.group_id == env[f"VSA_{component.upper()}_GROUP_ID"]
        if component == "indexer":
            assert settings.opensearch == load_settings(OpenSearchSettings)
            assert settings.opensearch.url == env["OPENSEARCH_URL"]
        checked.append(component)
    assert {"ingest", "detector", "indexer"} <= set(checked), (profile_name, checked)


def test_ingest_accepts_every_cameras_file(profile: tuple[str, Rendered], tmp_path: Path) -> None:
    _, rendered = profile
    config = rendered.get("ConfigMap", "vsa-config")["data"]
    files = [name for name in config if name.startswith("cameras")]
    assert files
    for name in files:
        path = tmp_path / name
        path.write_text(config[name])
        assert load_cameras_file(path), name


def test_the_topics_job_settings(
    profile: tuple[str, Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, rendered = profile
    job = rendered.get("Job", "vsa-topics")
    env = use_env(monkeypatch, job["spec"]["template"]["spec"]["containers"][0])
    topics = load_settings(TopicsSettings)
    assert topics.partitions == int(env["VSA_TOPICS_PARTITIONS"])
    specs = topics.specs()
    assert f"{env['VSA_TOPICS_NAMES__PREFIX']}frames" in specs
    assert load_settings(KafkaSettings).security_protocol == env["KAFKA_SECURITY_PROTOCOL"]


def test_the_hook_sets_up_the_indices_with_the_indexers_settings(
    render: Renderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vsa.services.indexer.settings import IndexerSettings

    sets = ["indexer.config.hnsw.m=24", "indexer.config.consume_alerts=false"]
    job = render(sets=sets).get("Job", "vsa-topics")
    containers = {c["name"]: c for c in job["spec"]["template"]["spec"]["containers"]}
    assert containers["indices"]["args"] == ["indexer", "--init-only"]
    env = use_env(monkeypatch, containers["indices"])
    settings = load_settings(IndexerSettings)
    assert settings.hnsw.m == 24
    assert settings.consume_alerts is False
    assert settings.opensearch.url == env["OPENSEARCH_URL"]
    without = render(sets=["indexer.enabled=false"]).get("Job", "vsa-topics")
    assert [c["name"] for c in without["spec"]["template"]["spec"]["containers"]] == ["topics"]


def test_the_notifier_is_optional_and_accepts_what_the_chart_renders(
    render: Renderer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from vsa.services.notifier.config import NotifierSettings

    assert "Deployment/vsa-notifier" not in render().names()
    sets = [
        "notifier.enabled=true",
        "notifier.webhook.urlSecret.name=alert-hook",
        "notifier.webhook.tokenSecret.name=alert-hook",
        "notifier.mqtt.host=mqtt.home",
        "notifier.mqtt.username=nvr",
        "notifier.mqtt.passwordSecret.name=mqtt",
        "notifier.config.retry.max_tries=7",
        "topics.prefix=site-a.",
    ]
    rendered = render(sets=sets)
    deployment = rendered.get("Deployment", "vsa-notifier")
    for doc in (deployment, rendered.get("Service", "vsa-notifier")):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert rendered.get("Service", "vsa-notifier")["spec"]["ports"][0]["port"] == 9106
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    secrets = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e
    }
    assert secrets["VSA_NOTIFIER_WEBHOOK__URL"] == {"name": "alert-hook", "key": "url"}
    assert secrets["VSA_NOTIFIER_WEBHOOK__TOKEN"] == {"name": "alert-hook", "key": "token"}
    assert secrets["VSA_NOTIFIER_MQTT__PASSWORD"] == {"name": "mqtt", "key": "password"}
    use_env(monkeypatch, container)
    monkeypatch.setenv("VSA_NOTIFIER_WEBHOOK__URL", "https://hooks.example/T0/abc")  # the Secret
    config_file = tmp_path / "notifier.yaml"
    config_file.write_text(rendered.get("ConfigMap", "vsa-config")["data"]["notifier.yaml"])
    settings = load_settings(NotifierSettings, config_file)
    assert settings.retry.max_tries == 7
    assert (settings.mqtt.host, settings.mqtt.port, settings.mqtt.username) == (
        "mqtt.home",
        1883,
        "nvr",
    )
    assert settings.mqtt.topic == "vsa/alerts/{camera_id}/{kind}"
    assert settings.mqtt.password is not None
    assert settings.group_id == "site-a.vsa-notifier"
    assert settings.topics.prefix == "site-a."
