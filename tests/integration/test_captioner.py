"""The captioner against the real local Kafka: real frames from the sample clip (ingest), real
detections (the ONNX detector), keyframes referencing the frames; captions come out with text,
thumbnail and frame reference, broken keyframes go to the dead letters."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import simplejpeg
from confluent_kafka import Message

from vsa.runtime.kafka import Output, Producer
from vsa.runtime.settings import KafkaSettings, load_settings
from vsa.schemas import (
    Alert,
    AlertSnapshot,
    CameraConfig,
    Caption,
    DeadLetter,
    FrameMeta,
    FrameRef,
    Keyframe,
    TrackedObject,
    make_alert_id,
)
from vsa.services.captioner.config import CaptionerSettings
from vsa.services.captioner.service import build_loop
from vsa.services.detector.backends import build_backend
from vsa.services.detector.backends.config import OnnxRuntimeConfig
from vsa.services.detector.models import yolov3_tiny_onnx
from vsa.services.detector.pipeline import detect_batch
from vsa.services.detector.postprocess import SelectionParams
from vsa.services.ingest.config import CameraSpec
from vsa.services.ingest.service import IngestService

from .test_ingest import make_settings, read_frames

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def keyframes_for(frames: list[Message], reason: str = "periodic") -> list[Keyframe]:
    """Keyframes for real frames, with objects from the real detector (as tracks would be)."""
    backend = build_backend(OnnxRuntimeConfig(), yolov3_tiny_onnx().path)
    images = [simplejpeg.decode_jpeg(m.value()) for m in frames]
    found = detect_batch(backend, images, SelectionParams(conf_threshold=0.3)).detections
    out = []
    for msg, dets in zip(frames, found, strict=True):
        meta = FrameMeta.from_headers(msg.headers())
        objects = [
            TrackedObject(
                track_id=i + 1,
                xyxy=tuple(float(v) for v in box),
                class_id=int(c),
                class_name=backend.model.class_names[int(c)],
                score=float(s),
                velocity_px_s=(-60.0, 0.0),
                age_frames=5,
                state="confirmed",
            )
            for i, (box, s, c) in enumerate(
                zip(dets.xyxy, dets.scores, dets.class_ids, strict=True)
            )
        ]
        ref = meta.frame_ref(msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
        out.append(
            Keyframe(
                camera_id=meta.camera_id,
                frame_seq=meta.frame_seq,
                frame=ref,
                capture_ts=meta.capture_ts,
                reason=reason,
                objects=objects,
                width=meta.width,
                height=meta.height,
            )
        )
    return out


def run_captioner(settings: CaptionerSettings) -> int:
    loop, handler = build_loop(settings)
    # the service's own start-up wait; the configs produced before must all be in by now
    assert handler.configs.start_synced(settings.camera_config_sync_s)
    thread = threading.Thread(target=loop.run)
    thread.start()
    thread.join(timeout=120)
    handler.configs.stop()
    handler.fetcher.close()
    return handler.captioned


def test_keyframes_become_captions_with_thumbnails(
    kafka: KafkaSettings, unique_name: str, vtest: Path
) -> None:
    ingest = make_settings(
        kafka, unique_name, [CameraSpec(camera_id="plaza", url=str(vtest), fps=0.5)], max_frames=6
    )
    IngestService(ingest).run()
    frames = read_frames(kafka, ingest.topics.name("frames"), 6)
    keyframes = keyframes_for(frames)
    producer = Producer(kafka, "test")
    zone = {"zone_id": "plaza", "name": "plaza", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}
    config = CameraConfig.model_validate({"camera_id": "plaza", "zones": [zone]})
    producer.produce(Output(ingest.topics.name("camera_config"), "plaza", config.to_bytes()))
    for keyframe in keyframes:
        producer.produce(Output(ingest.topics.name("keyframes"), "plaza", keyframe.to_bytes()))
    producer.produce(Output(ingest.topics.name("keyframes"), "plaza", b'{"not": "a keyframe"}'))
    producer.flush()

    settings = load_settings(
        CaptionerSettings,
        None,
        kafka=kafka,
        topics=ingest.topics,
        captions_per_minute=0,
        idle_exit_s=4,
        metrics_port=0,
    )
    assert run_captioner(settings) == 6
    captions = [
        Caption.from_bytes(m.value()) for m in read_frames(kafka, ingest.topics.name("captions"), 6)
    ]
    assert [c.frame_seq for c in captions] == [k.frame_seq for k in keyframes]
    assert all(c.frame == k.frame for c, k in zip(captions, keyframes, strict=True))
    people = [c for c in captions if any(o.class_name == "person" for o in c.objects)]
    assert len(people) >= 4  # vtest.avi is full of pedestrians
    assert all("zone 'plaza'" in c.text for c in people)
    assert any("walking left" in c.text for c in people)
    for caption in captions:
        assert caption.captioner == "vsa-scene-v1"
        assert 0 < len(caption.thumbnail_jpeg) <= 32 * 1024
        assert simplejpeg.decode_jpeg(caption.thumbnail_jpeg).shape[1] <= 320
    [dead] = read_frames(kafka, ingest.topics.dlq("captioner"), 1)
    assert dead.value() == b'{"not": "a keyframe"}'
    assert DeadLetter.from_headers(dead.headers()).service == "captioner"


def as_alert(keyframe: Keyframe, rule_id: str) -> Keyframe:
    """The keyframe as the tracker sends it when a rule fired on the frame (a zone intrusion)."""
    alert_id = make_alert_id(keyframe.camera_id, rule_id, 1, keyframe.frame_seq)
    alert = Alert(
        alert_id=alert_id,
        camera_id=keyframe.camera_id,
        rule_id=rule_id,
        kind="zone_intrusion",
        track_ids=[1],
        class_name="person",
        ts=keyframe.capture_ts,
        frame_seq=keyframe.frame_seq,
        snapshot=AlertSnapshot(frame=keyframe.frame, xyxy=(10.0, 10.0, 50.0, 90.0)),
    )
    return keyframe.model_copy(
        update={"reason": "alert", "alert_ids": [alert_id], "alerts": [alert]}
    )


def test_rate_limit_skips_periodic_keyframes_but_not_alerts(
    kafka: KafkaSettings, unique_name: str, vtest: Path
) -> None:
    ingest = make_settings(
        kafka, unique_name, [CameraSpec(camera_id="lobby", url=str(vtest), fps=1)], max_frames=8
    )
    IngestService(ingest).run()
    frames = read_frames(kafka, ingest.topics.name("frames"), 8)
    periodic = keyframes_for(frames)
    spaced = [  # 1 s apart in capture time, every other one an alert
        k.model_copy(update={"capture_ts": periodic[0].capture_ts + i})
        for i, k in enumerate(periodic)
    ]
    keyframes = [as_alert(k, "door") if i % 2 else k for i, k in enumerate(spaced)]
    producer = Producer(kafka, "test")
    for keyframe in keyframes:
        producer.produce(Output(ingest.topics.name("keyframes"), "lobby", keyframe.to_bytes()))
    producer.flush()
    # one token, refilled every 10 s of capture time: within these 8 s only the first keyframe
    # (periodic) gets one; every alert keyframe is over the limit
    first = keyframes[0].frame_seq
    alerts = [k.frame_seq for k in keyframes if k.reason == "alert"]
    assert len(alerts) == 4
    captions_topic = ingest.topics.name("captions")

    def captioner(group_id: str, always_caption_alerts: bool) -> CaptionerSettings:
        return load_settings(
            CaptionerSettings,
            None,
            kafka=kafka,
            topics=ingest.topics,
            group_id=group_id,
            captions_per_minute=6,
            burst=1,
            always_caption_alerts=always_caption_alerts,
            idle_exit_s=4,
            metrics_port=0,
        )

    assert run_captioner(captioner(f"{unique_name}-alerts", True)) == 1 + len(alerts)
    captions = [Caption.from_bytes(m.value()) for m in read_frames(kafka, captions_topic, 5)]
    assert [c.frame_seq for c in captions] == [first, *alerts]
    assert [c.alert_kinds for c in captions] == [[]] + [["zone_intrusion"]] * len(alerts)

    # the same keyframes, alerts not exempt: they are limited like the periodic ones
    assert run_captioner(captioner(f"{unique_name}-no-alerts", False)) == 1
    captions = [Caption.from_bytes(m.value()) for m in read_frames(kafka, captions_topic, 7)]
    assert [c.frame_seq for c in captions[len(alerts) + 1 :]] == [first]


def test_missing_frame_still_gets_a_caption_without_thumbnail(
    kafka: KafkaSettings, unique_name: str, vtest: Path
) -> None:
    ingest = make_settings(
        kafka, unique_name, [CameraSpec(camera_id="gone", url=str(vtest), fps=1)], max_frames=1
    )
    IngestService(ingest).run()
    [frame] = keyframes_for(read_frames(kafka, ingest.topics.name("frames"), 1))
    far = FrameRef(
        topic=frame.frame.topic,
        partition=frame.frame.partition,
        offset=10_000,
        camera_id="gone",
        frame_seq=frame.frame_seq,
    )
    producer = Producer(kafka, "test")
    producer.produce(
        Output(
            ingest.topics.name("keyframes"),
            "gone",
            frame.model_copy(update={"frame": far}).to_bytes(),
        )
    )
    producer.flush()
    settings = load_settings(
        CaptionerSettings,
        None,
        kafka=kafka,
        topics=ingest.topics,
        idle_exit_s=4,
        metrics_port=0,
        fetch_timeout_s=2,
    )
    assert run_captioner(settings) == 1
    [caption] = [
        Caption.from_bytes(m.value()) for m in read_frames(kafka, ingest.topics.name("captions"), 1)
    ]
    assert caption.thumbnail_jpeg == b""
    assert caption.text
    assert np.all([o.count >= 1 for o in caption.objects])
