"""What the console's browser tests look at, put into the real Kafka and OpenSearch: frames of the
sample clip in a frames topic, the real detector's boxes as tracks, captions of those keyframes
embedded by the real MiniLM and indexed, a few alerts in the alert history, camera configs.

Each keyframe is a real frame of ``vtest.avi`` (768×576), JPEG-encoded as ingest does; its boxes
come from the bundled YOLOv3-tiny, so "the full frame with boxes" shows what the pipeline would.
The captions are written here (the scene captioner needs the whole pipeline's state), one per
keyframe, worded as the scene captioner words them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import simplejpeg

from vsa.runtime.kafka import Output, Producer, ensure_topics
from vsa.runtime.settings import KafkaSettings, OpenSearchSettings, TopicNames, TopicSpec
from vsa.schemas import (
    Alert,
    AlertSnapshot,
    CameraConfig,
    Caption,
    Detections,
    FrameMeta,
    FrameRef,
    Tracks,
    make_alert_id,
)
from vsa.services.detector.core import FrameInput
from vsa.services.indexer.mapping import alert_document, caption_doc_id, caption_document
from vsa.services.indexer.settings import IndexerSettings, IndexNames
from vsa.services.indexer.store import bulk, ensure_indices, make_client

CAMERAS = ("plaza-north", "plaza-south", "gate")
#: (camera, frame index in vtest.avi, caption): two keyframes per camera, far enough apart in
#: time and words that search does not fold them together.
KEYFRAMES = (
    ("plaza-north", 40, "Afternoon. 5 people walking left across the plaza; a white van parked."),
    ("plaza-north", 380, "Afternoon. 4 people crossing the plaza centre in different directions."),
    ("plaza-south", 200, "Afternoon. People walking down the path past a parked car."),
    ("plaza-south", 560, "Afternoon. Two people in dark clothes standing on the grass."),
    ("gate", 120, "Afternoon. A truck and a car at the gate; 2 people walking in."),
    ("gate", 700, "Afternoon. 3 people crossing the line in front of the gate."),
)
THUMBNAIL_WIDTH = 256


@dataclass(frozen=True)
class Keyframe:
    """One keyframe as it landed: where its JPEG is in Kafka and what was indexed about it."""

    camera_id: str
    frame_seq: int
    ref: FrameRef
    capture_ts: float
    caption: str
    detections: Detections
    jpeg: bytes


def clip_frames(path: Path, indices: Sequence[int]) -> dict[int, np.ndarray]:
    """The RGB frames of the clip at ``indices`` (decoded in order once)."""
    wanted, frames = set(indices), {}
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                frames[index] = frame.to_ndarray(format="rgb24")
            if len(frames) == len(wanted):
                break
    return frames


class Writer:
    """Produces to the test's topics and reports where each record went."""

    def __init__(self, kafka: KafkaSettings, topics: TopicNames) -> None:
        self.topics = topics
        self.producer = Producer(kafka, "test-console")

    def send(self, topic: str, key: str, value: bytes, **kwargs: Any) -> tuple[int, int]:
        where: list[tuple[int, int]] = []

        def delivered(err: Any, msg: Any) -> None:
            assert err is None, err
            where.append((msg.partition(), msg.offset()))

        output = Output(self.topics.name(topic), key, value, **kwargs)
        self.producer.produce(output, on_delivery=delivered)
        self.producer.flush()
        return where[0]


def create_topics(kafka: KafkaSettings, topics: TopicNames) -> None:
    specs = {
        topics.name(t): TopicSpec(partitions=2)
        for t in ("frames", "detections", "tracks", "alerts")
    }
    specs[topics.name("camera_config")] = TopicSpec(partitions=1, compact=True)
    ensure_topics(kafka, specs)


def produce_frame(writer: Writer, camera: str, seq: int, image: np.ndarray) -> FrameInput:
    """The frame as ingest writes it: JPEG value, metadata in headers; capture time now."""
    height, width = image.shape[:2]
    meta = FrameMeta(
        camera_id=camera,
        frame_seq=seq,
        capture_ts=time.time(),
        width=width,
        height=height,
        source="file",
    )
    jpeg = bytes(simplejpeg.encode_jpeg(image, 85, colorspace="RGB"))
    partition, offset = writer.send(
        "frames", camera, jpeg, headers=meta.to_headers(), timestamp_ms=int(meta.capture_ts * 1000)
    )
    topic = writer.topics.name("frames")
    ref = FrameRef(topic=topic, partition=partition, offset=offset, camera_id=camera, frame_seq=seq)
    return FrameInput(meta, ref, jpeg)


def publish_keyframes(writer: Writer, clip: Path, detector: Any) -> list[tuple[Keyframe, Caption]]:
    """Every keyframe of :data:`KEYFRAMES`: its frame and tracks in Kafka, its caption built."""
    images = clip_frames(clip, [index for _, index, _ in KEYFRAMES])
    published = []
    for camera, index, text in KEYFRAMES:
        image = images[index]
        frame = produce_frame(writer, camera, index, image)  # frame_seq: the clip's frame index
        (detections,) = detector.detect([frame])
        assert isinstance(detections, Detections), detections
        writer.send("tracks", camera, tracks_of(detections).to_bytes())
        keyframe = Keyframe(
            camera, index, frame.ref, frame.meta.capture_ts, text, detections, frame.jpeg
        )
        published.append((keyframe, caption_of(keyframe, image)))
    return published


def publish_cameras(writer: Writer) -> None:
    """A config per camera (and one disabled camera) on the camera-config topic."""
    for camera in (*CAMERAS, "loading-dock"):
        config = CameraConfig(
            camera_id=camera,
            enabled=camera != "loading-dock",
            source_url=f"rtsp://cameras.example/{camera}",
            fps_target=5,
        )
        writer.send("camera_config", camera, config.to_bytes())


def tracks_of(detections: Detections) -> Tracks:
    """The detector's boxes as confirmed tracks numbered 1..n (what the frame view draws)."""
    objects = [
        {
            "track_id": number,
            "xyxy": list(box.xyxy),
            "class_id": box.class_id,
            "class_name": box.class_name,
            "score": box.score,
            "velocity_px_s": [0.0, 0.0],
            "age_frames": 5,
            "state": "confirmed",
        }
        for number, box in enumerate(detections.boxes, start=1)
    ]
    return Tracks.model_validate(
        {
            "camera_id": detections.camera_id,
            "frame_seq": detections.frame_seq,
            "frame": detections.frame.model_dump(),
            "capture_ts": detections.capture_ts,
            "tracks": objects,
        }
    )


def thumbnail(image: np.ndarray) -> bytes:
    """A small JPEG of the frame (the caption's own thumbnail)."""
    step = max(1, image.shape[1] // THUMBNAIL_WIDTH)
    small = np.ascontiguousarray(image[::step, ::step])
    return bytes(simplejpeg.encode_jpeg(small, 75, colorspace="RGB"))


def caption_of(keyframe: Keyframe, image: np.ndarray) -> Caption:
    counts = Counter(box.class_name for box in keyframe.detections.boxes)
    return Caption(
        camera_id=keyframe.camera_id,
        frame_seq=keyframe.frame_seq,
        frame=keyframe.ref,
        capture_ts=keyframe.capture_ts,
        text=keyframe.caption,
        objects=[{"class_name": name, "count": n} for name, n in sorted(counts.items())],
        track_ids=list(range(1, len(keyframe.detections.boxes) + 1)),
        captioner="scene",
        thumbnail_jpeg=thumbnail(image),
    )


def make_alert(
    keyframe: Keyframe, kind: str, rule_id: str, episode: int, ts: float | None = None
) -> Alert:
    """An alert on a keyframe, its snapshot box the first detected box."""
    box = keyframe.detections.boxes[0]
    return Alert(
        alert_id=make_alert_id(keyframe.camera_id, rule_id, 1, episode),
        camera_id=keyframe.camera_id,
        rule_id=rule_id,
        kind=kind,  # type: ignore[arg-type]
        track_ids=[1],
        class_name=box.class_name,
        ts=keyframe.capture_ts if ts is None else ts,
        frame_seq=keyframe.frame_seq,
        snapshot=AlertSnapshot(frame=keyframe.ref, xyxy=tuple(box.xyxy)),
        details={"episode": episode},
    )


def index(
    opensearch: OpenSearchSettings,
    names: IndexNames,
    embedder: Any,
    captions: Sequence[Caption],
    alerts: Sequence[Alert],
) -> None:
    """Index captions (embedded by ``embedder``) and alerts as the indexer does, then refresh."""
    client = make_client(opensearch, 30)
    ensure_indices(client, IndexerSettings(opensearch=opensearch, index=names))
    vectors = embedder.encode([c.text for c in captions])
    actions: list[tuple[dict[str, Any], dict[str, Any]]] = [
        (
            {
                "index": {
                    "_index": names.captions_index,
                    "_id": caption_doc_id(c.camera_id, c.frame_seq),
                }
            },
            caption_document(c, v),
        )
        for c, v in zip(captions, vectors, strict=True)
    ]
    actions += [
        ({"index": {"_index": names.alerts_index, "_id": a.alert_id}}, alert_document(a))
        for a in alerts
    ]
    assert all("error" not in item["index"] for item in bulk(client, actions, 30))
    client.indices.refresh(index=f"{names.prefix}*")


def drop_indices(opensearch: OpenSearchSettings, names: IndexNames) -> None:
    client = make_client(opensearch, 30)
    client.indices.delete(index=f"{names.prefix}*", ignore_unavailable=True)
    client.indices.delete_index_template(name=f"{names.prefix}*", ignore=404)
