"""`vsa detect` on real vtest frames, `vsa models info`, and `vsa detector` refusing a model it
cannot load, as users run them (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest
import simplejpeg

from vsa.runtime.settings import KafkaSettings
from vsa.schemas import Detections

pytestmark = pytest.mark.integration


def vsa(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vsa", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture(scope="module")
def frame_jpeg(vtest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    with av.open(str(vtest)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index == 100:
                image = frame.to_ndarray(format="rgb24")
                break
    path = tmp_path_factory.mktemp("frames") / "vtest 100.jpg"
    path.write_bytes(simplejpeg.encode_jpeg(image, quality=85))
    return path


def test_detect_prints_detections_and_draws(frame_jpeg: Path, tmp_path: Path) -> None:
    result = vsa("detect", str(frame_jpeg), "--draw", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    found = Detections.model_validate_json(line)
    assert (found.camera_id, found.frame_seq, found.frame.topic) == ("vtest-100", 0, "file")
    assert (found.width, found.height) == (768, 576)
    assert sum(box.class_name == "person" for box in found.boxes) >= 3
    (drawn,) = (tmp_path / "out").iterdir()
    assert drawn.name == "vtest-100-000000.jpg"
    assert simplejpeg.decode_jpeg(drawn.read_bytes()).shape == (576, 768, 3)


def test_detect_on_a_video_with_options(vtest: Path) -> None:
    result = vsa(
        "detect", str(vtest), "--max-frames", "10", "--classes", "person", "--conf", "0.4",
        "--model", "yolov3-tiny-int8",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    found = [Detections.model_validate_json(line) for line in result.stdout.splitlines()]
    assert [d.frame_seq for d in found] == list(range(10))
    assert all(d.model_id == "yolov3-tiny-int8@416x416" for d in found)
    boxes = [box for d in found for box in d.boxes]
    assert len(boxes) >= 20
    assert {box.class_name for box in boxes} == {"person"}
    assert min(box.score for box in boxes) > 0.4
    assert found[1].capture_ts - found[0].capture_ts == pytest.approx(0.1)


def test_models_info_describes_the_layout() -> None:
    result = vsa("models", "info", "yolov3-tiny", "--verbose")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["layout"] == "darknet"
    assert info["input_shape"] == ["batch", 3, 416, 416]
    assert info["output_shape"] == ["batch", 2535, 85]
    assert info["classes"][:3] == ["person", "bicycle", "car"]
    missing = vsa("models", "info", "/nonexistent/model.onnx")
    assert missing.returncode == 1
    assert "/nonexistent/model.onnx: model file not found" in missing.stderr


def test_models_convert_builds_and_caches_both_variants() -> None:
    result = vsa("models", "convert", "--int8")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [
        "yolov3-tiny@416x416",
        "yolov3-tiny-int8@416x416",
    ]
    assert all(Path(line.split()[1]).is_file() for line in lines)


@pytest.mark.parametrize("content", [None, b"\x08\x01not an onnx model"], ids=["missing", "broken"])
def test_detector_stops_at_start_on_a_model_it_cannot_load(
    kafka: KafkaSettings, tmp_path: Path, content: bytes | None
) -> None:
    model = tmp_path / "model.onnx"
    if content is not None:
        model.write_bytes(content)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "VSA_DETECTOR_MODEL": str(model),
        "VSA_DETECTOR_METRICS_PORT": "0",
        "VSA_DETECTOR_IDLE_EXIT_S": "5",
    }
    result = vsa("detector", env=env)
    assert result.returncode == 2
    assert str(model) in result.stderr
    expected = "model file not found" if content is None else "cannot load the model"
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_detect_camera_id_meets_the_example_rules(vtest: Path, tmp_path: Path) -> None:
    rules = Path(__file__).parents[2] / "examples" / "vtest-rules.yaml"
    detections = tmp_path / "d.jsonl"
    for camera_id, warned in (("cam-0", False), (None, True)):
        extra = ("--camera-id", camera_id) if camera_id else ()
        result = vsa("detect", str(vtest), "--max-frames", "5", *extra)
        assert result.returncode == 0, result.stderr
        found = [Detections.model_validate_json(line) for line in result.stdout.splitlines()]
        assert {d.camera_id for d in found} == {camera_id or "vtest"}
        assert {d.frame.camera_id for d in found} == {camera_id or "vtest"}
        detections.write_text(result.stdout)
        tracked = vsa("track", str(detections), "--rules", str(rules), "--only", "alerts")
        assert tracked.returncode == 0, tracked.stderr
        assert ("event=rules_for_unseen_cameras cameras=cam-0" in tracked.stderr) is warned
        assert ("event=cameras_without_rules cameras=vtest" in tracked.stderr) is warned
