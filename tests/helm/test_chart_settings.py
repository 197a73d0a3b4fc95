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
import yaml

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
        if component == "api":  # two settings classes and no metrics port: test_the_api_* below
            continue
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
    render: Renderer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from vsa.services.indexer.settings import IndexerSettings

    sets = [
        "indexer.config.hnsw.m=24",
        "indexer.config.consume_alerts=false",
        "indexer.indexPrefix=site-a-",
    ]
    rendered = render(sets=sets)
    job = rendered.get("Job", "vsa-topics")
    containers = {c["name"]: c for c in job["spec"]["template"]["spec"]["containers"]}
    assert containers["indices"]["args"] == ["indexer", "--init-only"]
    env = use_env(monkeypatch, containers["indices"])
    settings = load_settings(IndexerSettings)
    assert settings.hnsw.m == 24
    assert settings.consume_alerts is False
    assert settings.opensearch.url == env["OPENSEARCH_URL"]
    # The indices the hook creates are the ones the indexer's Deployment writes, with its engine
    # (a k-NN index keeps the engine it was created with).
    use_env(
        monkeypatch,
        rendered.get("Deployment", "vsa-indexer")["spec"]["template"]["spec"]["containers"][0],
    )
    (tmp_path / "indexer.yaml").write_text(
        rendered.get("ConfigMap", "vsa-config")["data"]["indexer.yaml"]
    )
    deployed = load_settings(IndexerSettings, tmp_path / "indexer.yaml")
    assert (settings.hnsw, settings.index) == (deployed.hnsw, deployed.index)
    assert (settings.hnsw.engine, settings.index.captions_index) == ("faiss", "site-a-captions")
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


# -- the HTTP API ----------------------------------------------------------------------------

#: Auth settings of the API per mode, as `--set` values (Secrets named, never values).
API_AUTH = {
    "basic": [
        "api.auth.mode=basic",
        "api.auth.username=operator",
        "api.auth.passwordSecret.name=vsa-console-login",
    ],
    "basic-user-from-secret": [
        "api.auth.mode=basic",
        "api.auth.usernameSecret.name=vsa-console-login",
        "api.auth.passwordSecret.name=vsa-console-login",
    ],
    "api_key": [
        "api.auth.mode=api_key",
        "api.auth.apiKeySecret.name=vsa-api-key",
        "api.console=false",
    ],
    "open": ["api.allowOpenExposure=true"],
}
#: What the Secrets hold in these tests: long enough for every credential's bounds.
SECRET_VALUE = "s3cret-from-a-kubernetes-secret"
#: Environment prefix -> the settings class that reads it (the API process loads all four).
API_ENV_CLASSES = {
    "VSA_API_": ("vsa.services.api.settings", "ApiSettings"),
    "VSA_SEARCH_": ("vsa.services.indexer.settings", "SearchSettings"),
    "KAFKA_": ("vsa.runtime.settings", "KafkaSettings"),
    "OPENSEARCH_": ("vsa.runtime.settings", "OpenSearchSettings"),
}


def env_field(name: str) -> Any:
    """The pydantic field a settings variable sets (``VSA_API_AUTH__MODE`` -> ApiSettings.auth
    -> AuthSettings.mode), or None when no settings class reads it."""
    for prefix, (module, class_name) in API_ENV_CLASSES.items():
        if not name.startswith(prefix):
            continue
        model: Any = getattr(importlib.import_module(module), class_name)
        field = None
        for part in name[len(prefix) :].lower().split("__"):
            if model is None or part not in model.model_fields:
                return None
            field = model.model_fields[part]
            annotation = field.annotation
            model = annotation if isinstance(annotation, type) else None
        return field
    return None


def test_env_field_finds_real_settings_only() -> None:
    """Guard: the lookup follows nested models and refuses names no class reads."""
    assert env_field("VSA_API_AUTH__MODE") is not None
    assert env_field("VSA_SEARCH_INDEX__PREFIX") is not None
    assert env_field("VSA_API_AUTH__TOKEN") is None
    assert env_field("VSA_API_METRICS_PORT") is None  # the API has no metrics port of its own
    assert env_field("VSA_SEARCH_API_HOSTNAME") is None


def api_rendered(render: Renderer, mode: str) -> Rendered:
    sets = [
        "api.enabled=true",
        "topics.prefix=site-a.",
        "indexer.indexPrefix=site-a-",
        "indexer.knnEngine=lucene",
        "indexer.config.index.captions=keyframes",
        "indexer.config.embedding.model_path=/models/minilm",
        "api.config.collapse.window_s=30",
        "api.port=8090",
        *API_AUTH[mode],
    ]
    return render(sets=sets)


@pytest.mark.parametrize("mode", sorted(API_AUTH))
def test_the_api_starts_as_the_code_expects(
    render: Renderer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: str
) -> None:
    from vsa.cli import build_parser
    from vsa.services.api.settings import ApiSettings, exposure_problem
    from vsa.services.console.cli import console_main
    from vsa.services.indexer.cli import search_api_main
    from vsa.services.indexer.settings import IndexerSettings, SearchSettings

    rendered = api_rendered(render, mode)
    deployment = rendered.get("Deployment", "vsa-api")
    for doc in (deployment, rendered.get("Service", "vsa-api")):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    # The command: the real CLI parses it, and it binds the port the probes and Service use.
    args = build_parser().parse_args(container["args"])
    console = mode != "api_key"
    assert args.func is (console_main if console else search_api_main)
    (port,) = container["ports"]
    assert (port["name"], port["containerPort"], args.port) == ("http", 8090, 8090)
    # Every settings variable the chart sets is read by one of the API's settings classes.
    names = [e["name"] for e in container["env"]]
    unread = [n for n in names if n.startswith(tuple(API_ENV_CLASSES)) and env_field(n) is None]
    assert not unread, unread
    # Credentials are Secret references only.
    for item in container["env"]:
        if item["name"] in ("VSA_API_AUTH__API_KEY", "VSA_API_AUTH__PASSWORD"):
            assert set(item) == {"name", "valueFrom"}, item
    env = use_env(monkeypatch, container)
    for name, item in zip(names, container["env"], strict=True):
        if "valueFrom" in item:
            monkeypatch.setenv(name, SECRET_VALUE)
    config_file = tmp_path / "api.yaml"
    config_file.write_text(rendered.get("ConfigMap", "vsa-config")["data"]["api.yaml"])
    search = load_settings(SearchSettings, config_file, api_host=args.host, api_port=args.port)
    api = load_settings(ApiSettings)
    # It starts: the exposure check the process makes at start passes on 0.0.0.0.
    assert search.api_host == "0.0.0.0"
    assert exposure_problem(search.api_host, api) is None
    assert api.auth.mode == ("none" if mode == "open" else mode.split("-")[0])
    assert api.allow_open_exposure is (mode == "open")
    if mode == "open":  # ... because of the chart's flag: without it the API would refuse
        monkeypatch.delenv("VSA_API_ALLOW_OPEN_EXPOSURE")
        assert exposure_problem(search.api_host, load_settings(ApiSettings)) is not None
    if mode.startswith("basic"):
        assert api.auth.password is not None
        assert api.auth.username == ("operator" if mode == "basic" else SECRET_VALUE)
    if mode == "api_key":
        assert api.auth.api_key is not None
    assert api.kafka == load_settings(KafkaSettings)
    assert api.kafka.bootstrap_servers == env["KAFKA_BOOTSTRAP_SERVERS"]
    assert api.topics.prefix == "site-a."
    assert search.opensearch == load_settings(OpenSearchSettings)
    assert search.collapse.window_s == 30
    # Search reads what the indexer writes: the same indices, engine and embedding model.
    indexer = rendered.get("Deployment", "vsa-indexer")["spec"]["template"]["spec"]
    use_env(monkeypatch, indexer["containers"][0])
    (tmp_path / "indexer.yaml").write_text(
        rendered.get("ConfigMap", "vsa-config")["data"]["indexer.yaml"]
    )
    written = load_settings(IndexerSettings, tmp_path / "indexer.yaml")
    assert search.index.captions_index == written.index.captions_index == "site-a-keyframes"
    assert search.index.alerts_index == written.index.alerts_index
    assert search.hnsw.engine == written.hnsw.engine == "lucene"
    assert search.embedding.model_path == written.embedding.model_path


def test_the_api_config_wins_over_the_indexers_shared_keys(render: Renderer) -> None:
    rendered = render(
        sets=[
            "api.enabled=true",
            "api.allowOpenExposure=true",
            "indexer.config.index.captions=keyframes",
            "indexer.config.index.alerts=events",
            "api.config.index.captions=other",
        ]
    )
    data = rendered.get("ConfigMap", "vsa-config")["data"]
    assert yaml.safe_load(data["api.yaml"]) == {"index": {"captions": "other", "alerts": "events"}}
    # The indexer's own file is untouched by the merge.
    assert yaml.safe_load(data["indexer.yaml"]) == {
        "index": {"captions": "keyframes", "alerts": "events"}
    }
