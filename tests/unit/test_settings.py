"""Settings: precedence (args > env > YAML > defaults), secrets, clear errors."""

from pathlib import Path

import pytest

from vsa.runtime.settings import ConfigError, KafkaSettings, OpenSearchSettings, load_settings
from vsa.runtime.topics import TopicsSettings
from vsa.services.ingest.config import IngestSettings, camera_from_flag, load_cameras_file


def test_env_wins_over_yaml_and_args_win_over_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "ingest.yaml"
    cfg.write_text(
        "queue_frames: 4\nreconnect_min_s: 2\ncameras:\n  - {camera_id: a, url: x.mp4}\n"
    )
    monkeypatch.setenv("VSA_INGEST_QUEUE_FRAMES", "16")
    settings = load_settings(IngestSettings, cfg)
    assert settings.queue_frames == 16
    assert settings.reconnect_min_s == 2
    assert settings.cameras[0].camera_id == "a"
    assert load_settings(IngestSettings, cfg, queue_frames=32).queue_frames == 32


def test_settings_are_frozen() -> None:
    settings = load_settings(IngestSettings)
    with pytest.raises(ValueError, match="frozen"):
        settings.queue_frames = 3  # type: ignore[misc]


def test_kafka_security_passthrough_and_secret_masking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker-1:9093,broker-2:9093")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "vsa")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("KAFKA_EXTRA", '{"socket.keepalive.enable": "true"}')
    kafka = load_settings(KafkaSettings)
    conf = kafka.client_config()
    assert conf["bootstrap.servers"] == "broker-1:9093,broker-2:9093"
    assert conf["sasl.password"] == "s3cret"
    assert conf["socket.keepalive.enable"] == "true"
    assert "s3cret" not in repr(kafka)
    assert "s3cret" not in str(kafka.model_dump())


def test_unknown_key_and_bad_value_name_the_file_and_field(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("queue_frame: 4\nreconnect_min_s: -1\n")
    with pytest.raises(ConfigError) as err:
        load_settings(IngestSettings, cfg)
    text = str(err.value)
    assert str(cfg) in text
    assert "queue_frame" in text
    assert "reconnect_min_s" in text


def test_invalid_yaml_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("cameras: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_settings(IngestSettings, cfg)


def test_opensearch_url_must_be_http() -> None:
    with pytest.raises(ConfigError, match="url"):
        load_settings(OpenSearchSettings, None, url="localhost:9200")


def test_camera_flag_parsing() -> None:
    cam = camera_from_flag("gate=rtsp://10.0.0.5/stream,fps=5,max_width=1280", 0)
    assert (cam.camera_id, cam.url, cam.fps, cam.max_width) == (
        "gate",
        "rtsp://10.0.0.5/stream",
        5,
        1280,
    )
    assert cam.kind == "live"
    plain = camera_from_flag("/data/clip.mp4", 3)
    assert (plain.camera_id, plain.kind) == ("cam3", "file")
    with pytest.raises(ConfigError, match="fps"):
        camera_from_flag("x=/a.mp4,fps=-2", 0)
    with pytest.raises(ConfigError, match="not key=value"):
        camera_from_flag("x=/a.mp4,loop", 0)


def test_cameras_file_errors_name_the_camera_and_field(tmp_path: Path) -> None:
    path = tmp_path / "cams.yaml"
    path.write_text(
        "cameras:\n  - {camera_id: ok, url: a.mp4}\n  - {camera_id: gate, url: b.mp4, fps: 0}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_cameras_file(path)
    assert "camera gate" in str(err.value)
    assert "fps" in str(err.value)


def test_duplicate_camera_ids_refused() -> None:
    cams = ({"camera_id": "a", "url": "x"}, {"camera_id": "a", "url": "y"})
    with pytest.raises(ConfigError, match="appears twice"):
        load_settings(IngestSettings, None, cameras=cams)


def test_topic_specs_share_partitions_and_compact_camera_config() -> None:
    specs = load_settings(TopicsSettings, None, partitions=12).specs()
    assert specs["frames"].partitions == specs["detections"].partitions == 12
    assert specs["camera-config"].compact
    assert specs["dlq.ingest"].partitions == 1
    assert set(specs) >= {"frames", "detections", "tracks", "alerts", "keyframes", "captions"}
