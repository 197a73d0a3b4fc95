"""The detector service on the PyTorch path (``backend: torch``), run here with ``device: cpu``
(the same code runs on CUDA on the GPU machine): detections out, bad frames to the dead letters
while the rest of the batch is detected, and the same boxes as the ONNX Runtime path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vsa.runtime.kafka import Output, Producer
from vsa.runtime.settings import KafkaSettings, TopicNames
from vsa.schemas import DeadLetter, Detections
from vsa.services.detector.agreement import Agreement, compare
from vsa.services.detector.records import DetectionArrays
from vsa.services.detector.service import build_loop
from vsa.services.tracker.camera import detection_arrays

from .test_detector import create_topics, detector_settings, frame_output, vtest_jpegs
from .test_ingest import read_frames

pytest.importorskip("torchvision")
pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Both paths run the same FP32 weights on the CPU, decode with libjpeg-turbo and letterbox with
#: the same half-pixel bilinear maths; they differ only in float summation order (scores agree to
#: ~1e-4, boxes to a fraction of a pixel; measured: all 46 boxes of 6 frames at IoU >= 0.99). A
#: shifted anchor, a wrong letterbox offset or scale, or a class mix-up falls far below these.
IOU = 0.98
#: A box this close to the confidence threshold may be kept by one path and not the other.
CONF_MARGIN = 0.01


def boxes_of(detections: Detections, min_score: float = 0.0) -> DetectionArrays:
    """The message's boxes scored at least ``min_score``, as a columnar record for compare()."""
    found = detection_arrays(detections)
    keep = found.scores >= min_score
    return DetectionArrays(
        found.xyxy[keep].astype(np.float32),
        found.scores[keep].astype(np.float32),
        found.class_ids[keep].astype(np.int32),
    )


def run_detector(
    kafka: KafkaSettings,
    names: TopicNames,
    frames: list[Output],
    detected: int,
    **settings: object,
) -> dict[int, Detections]:
    """Detections by frame_seq of one detector run over ``frames`` (``detected`` of them good)."""
    producer = Producer(kafka, "test")
    for out in frames:
        producer.produce(out)
    producer.flush(30)
    build_loop(detector_settings(kafka, names, **settings)).run()
    return {
        d.frame_seq: d
        for d in (
            Detections.from_bytes(m.value() or b"")
            for m in read_frames(kafka, names.name("detections"), detected)
        )
    }


def test_torch_backend_detects_and_dead_letters(
    kafka: KafkaSettings, unique_name: str, vtest: Path
) -> None:
    good = vtest_jpegs(vtest, 8)
    bad = {1: good[1][:500], 2: good[1]}  # truncated; a JPEG of another size than its metadata
    names = create_topics(kafka, unique_name, partitions=1)
    frames = names.name("frames")
    torch_input = [frame_output(frames, jpeg, seq) for seq, jpeg in enumerate(good)]
    torch_input[1] = frame_output(frames, bad[1], 1)
    torch_input[2] = frame_output(frames, bad[2], 2, size=(640, 480))
    found = run_detector(
        kafka,
        names,
        torch_input,
        len(good) - len(bad),
        max_batch=4,
        max_wait_ms=5000,
        backend={"type": "torch", "device": "cpu", "half": False},
    )
    detected = sorted(set(range(len(good))) - set(bad))
    assert sorted(found) == detected
    assert all(d.model_id.endswith(":torch") for d in found.values())
    letters = [
        DeadLetter.from_headers(m.headers()) for m in read_frames(kafka, names.dlq("detector"), 2)
    ]
    assert sorted(w.source_offset for w in letters) == sorted(bad)

    # The ONNX Runtime path on the same frames finds the same boxes.
    ort_names = create_topics(kafka, unique_name + "-ort", partitions=1)
    ort_frames = ort_names.name("frames")
    reference = run_detector(
        kafka,
        ort_names,
        [frame_output(ort_frames, good[seq], seq) for seq in detected],
        len(detected),
        max_batch=4,
    )
    assert sorted(reference) == detected
    # Both directions: every box of one that is clearly above the confidence threshold has a
    # box of the same class at IoU >= IOU in the other.
    clear = detector_settings(kafka, names).conf_threshold + CONF_MARGIN
    for ours, theirs in ((reference, found), (found, reference)):
        agreement = sum(
            (compare(boxes_of(ours[s], clear), boxes_of(theirs[s]), IOU) for s in detected),
            Agreement(),
        )
        assert agreement.reference >= 4 * len(detected)  # vtest.avi is full of pedestrians
        assert agreement.matched == agreement.reference, agreement
