"""The detector service against the real local Kafka: frames from the real ingest service in,
detections out with frame references that lead back to the right records; bad frames to the
dead letters while the rest of their batch is detected; offsets committed."""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
import pytest
import simplejpeg
from confluent_kafka import Consumer, Message, TopicPartition

from vsa.runtime.kafka import Output, Producer, ensure_topics
from vsa.runtime.settings import KafkaSettings, TopicNames, load_settings
from vsa.runtime.topics import TopicsSettings
from vsa.schemas import DeadLetter, Detections, FrameMeta
from vsa.services.detector.config import DetectorSettings
from vsa.services.detector.service import DetectorHandler, build_loop
from vsa.services.ingest.config import CameraSpec, IngestSettings
from vsa.services.ingest.service import IngestService

from .test_ingest import read_frames

pytestmark = pytest.mark.integration


def create_topics(kafka: KafkaSettings, prefix: str, partitions: int) -> TopicNames:
    names = TopicNames(prefix=f"{prefix}.")
    topics = load_settings(TopicsSettings, None, names=names, partitions=partitions)
    ensure_topics(kafka, topics.specs())
    return names


def detector_settings(
    kafka: KafkaSettings, names: TopicNames, **overrides: object
) -> DetectorSettings:
    values: dict[str, object] = {
        "kafka": kafka,
        "topics": names,
        "metrics_port": 0,
        "idle_exit_s": 3.0,
        "backend": {"type": "onnxruntime", "intra_op_num_threads": 2},
        "group_id": f"detector-{time.monotonic_ns()}",
    }
    values.update(overrides)
    return load_settings(DetectorSettings, None, **values)


def fetch_record(kafka: KafkaSettings, topic: str, partition: int, offset: int) -> Message:
    """The one record at (topic, partition, offset)."""
    consumer = Consumer(
        {
            **kafka.client_config(),
            "group.id": f"fetch-{time.monotonic_ns()}",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                return msg
    finally:
        consumer.close()
    raise AssertionError(f"no record at {topic}[{partition}]@{offset}")


def committed_everything(kafka: KafkaSettings, group: str, topic: str, partitions: int) -> bool:
    """Whether ``group`` committed every partition of ``topic`` up to its end."""
    consumer = Consumer({**kafka.client_config(), "group.id": group, "enable.auto.commit": False})
    try:
        wanted = [TopicPartition(topic, p) for p in range(partitions)]
        committed = {tp.partition: tp.offset for tp in consumer.committed(wanted, timeout=10)}
        for p in range(partitions):
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > 0 and committed[p] != high:
                return False
        return True
    finally:
        consumer.close()


def test_frames_from_ingest_become_detections_that_point_back_to_them(
    kafka: KafkaSettings, unique_name: str, vtest: Path
) -> None:
    names = create_topics(kafka, unique_name, partitions=3)
    cameras = tuple(CameraSpec(camera_id=f"cam-{i}", url=str(vtest), fps=2) for i in range(3))
    ingest = load_settings(
        IngestSettings,
        None,
        kafka=kafka,
        topics=names,
        cameras=cameras,
        max_frames=24,
        metrics_port=0,
    )
    assert IngestService(ingest).run().acked == 24

    settings = detector_settings(kafka, names, max_batch=8)
    loop = build_loop(settings)
    loop.run()
    assert isinstance(loop.handler, DetectorHandler)
    assert loop.handler.totals["frames"] == 24
    assert loop.handler.totals["rejected"] == 0

    records = read_frames(kafka, names.name("detections"), 24)
    found = [Detections.from_bytes(msg.value()) for msg in records]
    assert len(found) == 24
    assert len({(d.camera_id, d.frame_seq) for d in found}) == 24
    assert all(msg.key() == d.camera_id.encode() for msg, d in zip(records, found, strict=True))
    for detections in found[::6]:
        ref = detections.frame
        frame = fetch_record(kafka, ref.topic, ref.partition, ref.offset)
        meta = FrameMeta.from_headers(frame.headers())
        assert (meta.camera_id, meta.frame_seq) == (detections.camera_id, detections.frame_seq)
        assert (meta.width, meta.height) == (detections.width, detections.height) == (768, 576)
        assert meta.capture_ts == detections.capture_ts
    people = [sum(b.class_name == "person" for b in d.boxes) for d in found]
    assert np.mean(people) >= 2, people
    assert all(set(d.timings) == {"decode", "preprocess", "infer", "postprocess"} for d in found)
    assert committed_everything(kafka, settings.service_group, names.name("frames"), 3)
    metrics = loop.metrics.render().decode()
    assert 'vsa_detector_frames_total{outcome="detected",service="detector"} 24.0' in metrics
    assert 'vsa_detector_stage_seconds_count{service="detector",stage="infer"}' in metrics
    assert 'vsa_detector_objects_total{class_name="person",service="detector"}' in metrics


def vtest_jpegs(clip: Path, count: int) -> list[bytes]:
    jpegs = []
    with av.open(str(clip)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % 25 == 0:
                jpegs.append(simplejpeg.encode_jpeg(frame.to_ndarray(format="rgb24"), quality=85))
            if len(jpegs) == count:
                break
    return jpegs


def frame_output(topic: str, jpeg: bytes, seq: int, size: tuple[int, int] = (768, 576)) -> Output:
    meta = FrameMeta(
        camera_id="gate",
        frame_seq=seq,
        capture_ts=1.7e9 + seq,
        width=size[0],
        height=size[1],
        source="file",
    )
    return Output(topic, "gate", jpeg, headers=meta.to_headers())


def test_bad_frames_go_to_the_dead_letters_and_the_batch_goes_on(
    kafka: KafkaSettings, unique_name: str, vtest: Path
) -> None:
    names = create_topics(kafka, unique_name, partitions=1)
    frames = names.name("frames")
    good = vtest_jpegs(vtest, 4)
    corrupt = good[0][: len(good[0]) // 3]
    outputs = [
        frame_output(frames, good[0], 0),
        frame_output(frames, corrupt, 1),
        frame_output(frames, good[1], 2),
        Output(frames, "gate", good[2], headers=None),  # no headers at all
        frame_output(frames, good[2], 4, size=(640, 480)),  # headers disagree with the JPEG
        frame_output(frames, good[3], 5),
    ]
    producer = Producer(kafka, "test")
    for out in outputs:
        producer.produce(out)
    producer.flush(30)

    settings = detector_settings(kafka, names, max_batch=len(outputs), max_wait_ms=5000)
    loop = build_loop(settings)
    loop.run()
    assert loop.batches == 1, "everything came in one batch"

    found = [
        Detections.from_bytes(m.value()) for m in read_frames(kafka, names.name("detections"), 3)
    ]
    assert sorted(d.frame_seq for d in found) == [0, 2, 5]
    assert all(any(b.class_name == "person" for b in d.boxes) for d in found)
    letters = read_frames(kafka, names.dlq("detector"), 3)
    assert len(letters) == 3
    by_offset = {}
    for msg in letters:
        why = DeadLetter.from_headers(msg.headers())
        assert (why.service, why.source_topic, why.source_partition) == ("detector", frames, 0)
        by_offset[why.source_offset] = (why, msg)
    assert sorted(by_offset) == [1, 3, 4]
    for offset, (_why, msg) in by_offset.items():
        assert msg.value() == outputs[offset].value, "the original bytes"
        assert msg.key() == b"gate"
    assert "corrupt JPEG" in by_offset[1][0].error_message
    assert by_offset[3][0].error_class == "SchemaError"
    assert "missing header" in by_offset[3][0].error_message
    assert "frame of unexpected size" in by_offset[4][0].error_message
    assert ("vsa-camera-id", b"gate") in (by_offset[4][1].headers() or []), "original headers kept"
    assert committed_everything(kafka, settings.service_group, frames, 1)
