"""The detector's core and handler on real vtest JPEGs, without Kafka: one backend call per
batch, bad frames failing alone, exact boxes through downscaled decodes, records in and out."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import simplejpeg
from confluent_kafka import Message

from vsa.runtime.settings import ConfigError, load_settings
from vsa.schemas import Detection, Detections, FrameMeta, SchemaError
from vsa.services.detector.agreement import compare
from vsa.services.detector.backends import DetectorBackend
from vsa.services.detector.config import DetectorSettings
from vsa.services.detector.core import FrameDetector, FrameInput
from vsa.services.detector.jpeg import FrameError
from vsa.services.detector.loading import load_detector
from vsa.services.detector.models import yolov3_tiny_onnx
from vsa.services.detector.records import DetectionArrays
from vsa.services.detector.service import DetectorHandler

pytestmark = pytest.mark.slow

TOPIC = "frames"


class CountingBackend:
    """Wraps a backend and records the batch size of every inference."""

    def __init__(self, inner: DetectorBackend) -> None:
        self.inner = inner
        self.batches: list[int] = []
        self.name, self.model, self.input_size = inner.name, inner.model, inner.input_size

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(batch.shape[0])
        return self.inner.infer(batch)

    def warmup(self) -> None:
        self.inner.warmup()


@pytest.fixture(scope="module")
def frames(vtest: Path) -> dict[int, np.ndarray]:
    wanted = {100, 200}
    found: dict[int, np.ndarray] = {}
    with av.open(str(vtest)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                found[index] = frame.to_ndarray(format="rgb24")
            if index >= max(wanted):
                break
    return found


@pytest.fixture(scope="module")
def core() -> FrameDetector:
    settings = load_settings(
        DetectorSettings, None, backend={"type": "onnxruntime", "intra_op_num_threads": 2}
    )
    return load_detector(settings)


def frame_input(image: np.ndarray, seq: int, size: tuple[int, int] | None = None) -> FrameInput:
    data = simplejpeg.encode_jpeg(image, quality=85)
    width, height = size or (image.shape[1], image.shape[0])
    meta = FrameMeta(
        camera_id="cam-1",
        frame_seq=seq,
        capture_ts=1.5e9 + seq,
        width=width,
        height=height,
        source="file",
    )
    return FrameInput(meta, meta.frame_ref(TOPIC, 3, 1000 + seq), data)


def people(found: Detections) -> list[Detection]:
    return [box for box in found.boxes if box.class_name == "person"]


def test_bad_frames_fail_alone_and_the_rest_is_one_backend_call(
    core: FrameDetector, frames: dict[int, np.ndarray]
) -> None:
    counting = CountingBackend(core.backend)
    detector = FrameDetector(counting, core.params, core.model_id, resize=core.resize)
    good_a, good_b = frame_input(frames[100], 100), frame_input(frames[200], 200)
    corrupt = FrameInput(good_a.meta, good_a.ref, good_a.jpeg[: len(good_a.jpeg) // 3])
    resized = frame_input(frames[100][:480, :640], 101, size=(768, 576))
    results = detector.detect([good_a, corrupt, resized, good_b])
    assert counting.batches == [2]
    first, broken, wrong_size, second = results
    assert isinstance(broken, FrameError)
    assert "corrupt JPEG" in str(broken)
    assert isinstance(wrong_size, FrameError)
    assert "frame of unexpected size: the JPEG is 640x480, its headers say 768x576" in str(
        wrong_size
    )
    for found, frame in ((first, good_a), (second, good_b)):
        assert isinstance(found, Detections)
        assert found.frame == frame.ref
        assert found.frame_seq == frame.meta.frame_seq
        assert (found.width, found.height, found.capture_ts) == (768, 576, frame.meta.capture_ts)
        assert found.model_id == "yolov3-tiny@416x416"
        assert set(found.timings) == {"decode", "preprocess", "infer", "postprocess"}
        assert len(people(found)) >= 3
        assert all(0 <= b.xyxy[0] <= b.xyxy[2] <= 768 for b in found.boxes)
        assert Detections.from_bytes(found.to_bytes()) == found


def _arrays(found: Detections, scale: float = 1.0) -> DetectionArrays:
    return DetectionArrays(
        np.array([b.xyxy for b in found.boxes], np.float32).reshape(-1, 4) * scale,
        np.array([b.score for b in found.boxes], np.float32),
        np.array([b.class_id for b in found.boxes], np.int32),
    )


def test_a_downscaled_decode_gives_the_same_boxes_in_source_pixels(
    core: FrameDetector, frames: dict[int, np.ndarray]
) -> None:
    image = frames[100]
    doubled = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)  # 1536x1152
    small, big = core.detect([frame_input(image, 1), frame_input(doubled, 2)])
    assert isinstance(small, Detections)
    assert isinstance(big, Detections)
    assert core.decode(frame_input(doubled, 2)).shift == 1
    assert (big.width, big.height) == (1536, 1152)
    agreement = compare(_arrays(small, 2.0), _arrays(big), iou_threshold=0.8)
    assert agreement.matched_fraction >= 0.9
    assert agreement.extra_fraction <= 0.1


def record(value: bytes | None, headers: list[tuple[str, bytes]] | None, offset: int) -> Message:
    return Message(
        topic=TOPIC, partition=2, offset=offset, key=b"cam-1", value=value, headers=headers
    )


def test_handler_outputs_one_message_per_good_record_and_fails_the_rest(
    core: FrameDetector, frames: dict[int, np.ndarray]
) -> None:
    good = frame_input(frames[100], 7)
    headers = good.meta.to_headers()
    garbled = [(k, b"seven" if k == "vsa-frame-seq" else v) for k, v in headers]
    handler = DetectorHandler(core, "detections")
    result = handler(
        [
            record(good.jpeg, headers, 50),
            record(good.jpeg, None, 51),
            record(good.jpeg, garbled, 52),
            record(None, headers, 53),
            record(b"\xff\xd8 broken", headers, 54),
        ]
    )
    (output,) = result.outputs
    assert (output.topic, output.key) == ("detections", "cam-1")
    found = Detections.from_bytes(output.value)
    assert (found.frame.topic, found.frame.partition, found.frame.offset) == (TOPIC, 2, 50)
    assert (found.camera_id, found.frame_seq) == ("cam-1", 7)
    failed = {msg.offset(): exc for msg, exc in result.failures}
    assert sorted(failed) == [51, 52, 53, 54]
    assert isinstance(failed[51], SchemaError)
    assert "missing header" in str(failed[51])
    assert isinstance(failed[52], SchemaError)
    assert "vsa-frame-seq" in str(failed[52])
    assert isinstance(failed[53], FrameError)
    assert "empty record" in str(failed[53])
    assert isinstance(failed[54], FrameError)
    assert "corrupt JPEG" in str(failed[54])
    assert handler.totals == {"frames": 1, "boxes": len(found.boxes), "rejected": 4}


def test_class_filter_and_thresholds_come_from_settings(frames: dict[int, np.ndarray]) -> None:
    settings = load_settings(
        DetectorSettings, None, classes="car,truck", conf_threshold=0.3, max_det=1
    )
    detector = load_detector(settings)
    (found,) = detector.detect([frame_input(frames[100], 1)])
    assert isinstance(found, Detections)
    assert len(found.boxes) == 1
    assert found.boxes[0].class_name in {"car", "truck"}
    assert found.boxes[0].score > 0.3


def test_unknown_classes_and_sizes_stop_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"classes \['unicorn'\] are not classes of"):
        load_detector(load_settings(DetectorSettings, None, classes=("person", "unicorn")))
    missing = tmp_path / "nope.onnx"
    with pytest.raises(ConfigError, match="model file not found") as caught:
        load_detector(load_settings(DetectorSettings, None, model=str(missing)))
    assert str(missing) in str(caught.value)
    fixed = str(yolov3_tiny_onnx().path)
    with pytest.raises(ConfigError, match="the model's input is 416x416, input_size asks for"):
        load_detector(load_settings(DetectorSettings, None, model=fixed, input_size=(320, 416)))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x01garbage")
    with pytest.raises(ConfigError, match="cannot load the model") as caught:
        load_detector(load_settings(DetectorSettings, None, model=str(broken)))
    assert str(broken) in str(caught.value)
