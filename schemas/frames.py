"""The frames topic: the value is the raw JPEG, the metadata travels in Kafka headers.

Headers (UTF-8 text values; all required except ``vsa-pts-s``):

=====================  ============================================================
``vsa-schema-version``  ``1``
``vsa-camera-id``       camera id (also the record key)
``vsa-frame-seq``       frame sequence number, decimal, monotonic per camera
``vsa-capture-ts``      capture wall-clock time, UNIX seconds (float text)
``vsa-width``           image width, pixels
``vsa-height``          image height, pixels
``vsa-pts-s``           presentation time in the source, seconds (left out when unknown)
``vsa-source``          short kind of source: ``file``, ``rtsp``, ``http``, ``images``...
``vsa-content-type``    ``image/jpeg``
=====================  ============================================================

Other headers on the record are ignored, so producers may add their own (tracing ids...).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints

from .codec import HeaderMessage
from .common import CameraId, Dimension, Finite, FrameRef, FrameSeq, UnixTs

SourceKind = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class FrameMeta(HeaderMessage):
    """Metadata of one frame of the frames topic (carried in the record's headers)."""

    LOGICAL_TOPIC: ClassVar[str] = "frames"
    HEADER_PREFIX: ClassVar[str] = "vsa-"

    camera_id: CameraId
    frame_seq: FrameSeq
    capture_ts: UnixTs = Field(
        description="Wall-clock time (UNIX seconds) when the frame was captured or decoded."
    )
    width: Dimension = Field(description="Image width, pixels (1..16384).")
    height: Dimension = Field(description="Image height, pixels (1..16384).")
    pts_s: Finite | None = Field(
        None,
        description="Presentation time of the frame in its source, seconds; None when the source "
        "has no timeline (still images, some HTTP streams).",
    )
    source: SourceKind = Field(
        description="Short kind of source the frame came from: 'file', 'rtsp', 'http', 'images'."
    )
    content_type: Literal["image/jpeg"] = Field(
        "image/jpeg", description="MIME type of the record value."
    )

    def frame_ref(self, topic: str, partition: int, offset: int) -> FrameRef:
        """The reference to this frame's record, given where Kafka stored it."""
        return FrameRef(
            topic=topic,
            partition=partition,
            offset=offset,
            camera_id=self.camera_id,
            frame_seq=self.frame_seq,
        )
