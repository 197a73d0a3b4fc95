"""The detector service on the PyTorch path (``backend: torch``), run here with ``device: cpu``
(the same code runs on CUDA on the GPU machine): detections out, bad frames to the dead letters
while the rest of the batch is detected, and the same boxes as the ONNX Runtime path."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsa.runtime.kafka import Producer
from vsa.runtime.settings import KafkaSettings
from vsa.schemas import DeadLetter, Detections
from vsa.services.detector.service import build_loop

from .test_detector import create_topics, detector_settings, frame_output, vtest_jpegs
from .test_ingest import read_frames

pytest.importorskip("torchvision")
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_torch_backend_detects_and_dead_letters(
    kafka: KafkaSettings, unique_name: str, vtest: Path
) -> None:
    names = create_topics(kafka, unique_name, partitions=1)
    frames = names.name("frames")
    good = vtest_jpegs(vtest, 3)
    outputs = [
        frame_output(frames, good[0], 0),
        frame_output(frames, good[1][:500], 1),
        frame_output(frames, good[1], 2, size=(640, 480)),
        frame_output(frames, good[2], 3),
    ]
    producer = Producer(kafka, "test")
    for out in outputs:
        producer.produce(out)
    producer.flush(30)

    torch_settings = detector_settings(
        kafka,
        names,
        max_batch=4,
        max_wait_ms=5000,
        backend={"type": "torch", "device": "cpu", "half": False},
    )
    loop = build_loop(torch_settings)
    loop.run()
    found = {
        d.frame_seq: d
        for d in (
            Detections.from_bytes(m.value())
            for m in read_frames(kafka, names.name("detections"), 2)
        )
    }
    assert sorted(found) == [0, 3]
    assert all(d.model_id.endswith(":torch") for d in found.values())
    letters = [
        DeadLetter.from_headers(m.headers()) for m in read_frames(kafka, names.dlq("detector"), 2)
    ]
    assert sorted(w.source_offset for w in letters) == [1, 2]

    # The ONNX Runtime path on the same frames finds the same people.
    ort_names = create_topics(kafka, unique_name + "-ort", partitions=1)
    for seq in (0, 3):
        producer.produce(frame_output(ort_names.name("frames"), good[0 if seq == 0 else 2], seq))
    producer.flush(30)
    build_loop(detector_settings(kafka, ort_names, max_batch=4)).run()
    reference = {
        d.frame_seq: d
        for d in (
            Detections.from_bytes(m.value())
            for m in read_frames(kafka, ort_names.name("detections"), 2)
        )
    }
    for seq in (0, 3):
        ours = sorted(round(b.xyxy[0]) for b in found[seq].boxes if b.class_name == "person")
        ref = sorted(round(b.xyxy[0]) for b in reference[seq].boxes if b.class_name == "person")
        assert len(ours) >= 2
        assert abs(len(ours) - len(ref)) <= 1
