"""Detector settings: defaults, environment forms, bounds, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsa.runtime.settings import ConfigError, load_settings
from vsa.services.detector.backends import AutoConfig, OnnxRuntimeConfig
from vsa.services.detector.cli import camera_id_for, detector_settings, parse_size
from vsa.services.detector.config import DetectorSettings


def test_defaults() -> None:
    settings = load_settings(DetectorSettings)
    assert settings.model == "yolov3-tiny"
    assert isinstance(settings.backend, AutoConfig)
    assert (settings.conf_threshold, settings.iou_threshold) == (0.25, 0.45)
    assert settings.classes == ()
    assert settings.input_size is None
    assert settings.metrics_port == 9102
    assert settings.service_group == "vsa-detector"
    assert settings.idle_exit_s is None
    assert settings.max_batch == 8


def test_environment_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSA_DETECTOR_MODEL", "yolov3-tiny-int8")
    monkeypatch.setenv("VSA_DETECTOR_CLASSES", '["person", "car"]')
    monkeypatch.setenv("VSA_DETECTOR_INPUT_SIZE", "[320, 416]")
    monkeypatch.setenv("VSA_DETECTOR_BACKEND", '{"type": "onnxruntime", "intra_op_num_threads": 2}')
    monkeypatch.setenv("VSA_DETECTOR_IDLE_EXIT_S", "5")
    monkeypatch.setenv("VSA_DETECTOR_TOPICS__PREFIX", "site-a.")
    settings = load_settings(DetectorSettings)
    assert settings.classes == ("person", "car")
    assert settings.input_size == (320, 416)
    assert settings.backend == OnnxRuntimeConfig(intra_op_num_threads=2)
    assert settings.idle_exit_s == 5
    assert settings.topics.name("frames") == "site-a.frames"
    monkeypatch.setenv("VSA_DETECTOR_INPUT_SIZE", "416")
    assert load_settings(DetectorSettings).input_size == (416, 416)


def test_yaml_and_comma_separated_classes(tmp_path: Path) -> None:
    config = tmp_path / "detector.yaml"
    config.write_text("classes: person, car\ninput_size: 320x416\nmax_batch: 16\n")
    settings = load_settings(DetectorSettings, config)
    assert settings.classes == ("person", "car")
    assert settings.input_size == (320, 416)
    assert settings.max_batch == 16


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("conf_threshold", 1.5, "conf_threshold"),
        ("iou_threshold", -0.1, "iou_threshold"),
        ("max_det", 0, "max_det"),
        ("input_size", (300, 416), "multiples of 32"),
        ("classes", ("person", "person"), "appear twice"),
        ("backend", {"type": "openvino"}, "backend"),
        ("idle_exit_s", 0, "idle_exit_s"),
        ("max_frame_pixels", 0, "max_frame_pixels"),
    ],
)
def test_bad_values_name_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(DetectorSettings, None, **{field: value})


def test_unparsable_environment_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSA_DETECTOR_BACKEND", "onnxruntime")
    with pytest.raises(ConfigError, match="backend"):
        detector_settings()


def test_cli_helpers() -> None:
    assert parse_size("416") == (416, 416)
    assert parse_size("320x416") == (320, 416)
    assert parse_size(None) is None
    with pytest.raises(ConfigError, match="multiples of 32"):
        parse_size("300")
    with pytest.raises(ConfigError, match="HEIGHTxWIDTH"):
        parse_size("big")
    assert camera_id_for(Path("/videos/my clip (1).mp4")) == "my-clip-1-"
    assert camera_id_for(Path("/x/__.jpg")) == "file"
