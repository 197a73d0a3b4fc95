"""Building blocks shared by every topic contract: the error type, constrained types, FrameRef.

Units used throughout the contracts:

- times are UNIX seconds as floats (``*_ts``) or durations in seconds (``*_s``);
- boxes (``xyxy``) are pixels of the original image, origin at the top-left corner, x to the
  right, y down, as ``(x1, y1, x2, y2)`` with ``x1 <= x2`` and ``y1 <= y2``;
- zone and line points in camera configs are normalised to 0..1 of the image width and height;
- ``timings`` are milliseconds.

Every float in a message is finite: JSON has no NaN or infinity, so a message that carried one
could not be read back.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

#: The one schema version this code writes and reads. A message with any other version is
#: refused with a :class:`SchemaError` that says so (never half-parsed).
SCHEMA_VERSION: Final = 1

#: Kafka offsets, frame sequence numbers and other counters fit a signed 64-bit integer
#: (Kafka's and OpenSearch's ``long``).
INT64_MAX: Final = 2**63 - 1

#: Default size limit of one JSON message value, bytes. The largest regular message is a caption
#: (up to 32 KiB of thumbnail); detections and tracks of a crowded frame are a few tens of KiB.
MAX_JSON_MESSAGE_BYTES: Final = 1024 * 1024

#: Identifiers that end up as Kafka keys, OpenSearch id parts and file names.
ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"

#: Legal Kafka topic names.
TOPIC_NAME_PATTERN: Final = r"^[A-Za-z0-9._-]+$"


class SchemaError(ValueError):
    """A message or header set does not match its topic contract.

    The message names the topic, the field (or header) and what is wrong, so a service can log
    one line and send the input to its dead-letter topic. ``field`` is the dotted path of the
    first offending field or the header name, when there is one.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


CameraId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=ID_PATTERN),
    Field(
        description="Camera identifier, 1..128 characters of [A-Za-z0-9._:-] starting with a "
        "letter or digit; the Kafka key of every topic."
    ),
]

#: Zone, line, rule and service identifiers: same alphabet as camera ids, up to 64 characters.
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN)]

KafkaTopicName = Annotated[
    str, StringConstraints(min_length=1, max_length=249, pattern=TOPIC_NAME_PATTERN)
]

NonNegInt64 = Annotated[int, Field(ge=0, le=INT64_MAX)]

FrameSeq = Annotated[
    int,
    Field(
        ge=0,
        le=INT64_MAX,
        description="Frame sequence number, monotonic per camera; with camera_id the idempotency "
        "key of everything derived from the frame.",
    ),
]

UnixTs = Annotated[float, Field(ge=0, allow_inf_nan=False)]

#: A duration, seconds, >= 0.
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]

Finite = Annotated[float, Field(allow_inf_nan=False)]

Score = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]

ClassId = Annotated[int, Field(ge=0, le=2**31 - 1)]

ClassName = Annotated[str, StringConstraints(min_length=1, max_length=128)]

#: Image width or height in pixels.
Dimension = Annotated[int, Field(ge=1, le=16384)]

TrackId = Annotated[int, Field(ge=1, le=INT64_MAX)]

NormCoord = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
#: A point (x, y), each a fraction 0..1 of the image width / height.
Point = tuple[NormCoord, NormCoord]
CrossingDirection = Literal["a_to_b", "b_to_a", "both"]
#: Half-width of a line's dead band, in heights of the track's box (see ``Line``).
BoxHeights = Annotated[float, Field(ge=0, le=2, allow_inf_nan=False)]
#: Default dead band: 0.1 box heights (8 px for an 80 px tall person), a few times a detector's
#: box noise; a walking person (about 0.8 body heights/s) is beyond it 0.1-0.2 s after the line.
DEFAULT_HYSTERESIS_BOX_HEIGHTS = 0.1
#: Class names a zone or rule applies to; null: every class; an empty list is refused.
ClassFilter = Annotated[list[ClassName], Field(min_length=1, max_length=1000)] | None

AlertId = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{20,32}$"),
    Field(description="Deterministic alert id, 20..32 lowercase hex digits (see make_alert_id)."),
]


def _check_xyxy(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    if x1 > x2:
        raise ValueError(f"x1 ({x1}) must be <= x2 ({x2})")
    if y1 > y2:
        raise ValueError(f"y1 ({y1}) must be <= y2 ({y2})")
    return box


Xyxy = Annotated[
    tuple[Finite, Finite, Finite, Finite],
    AfterValidator(_check_xyxy),
    Field(
        description="Box (x1, y1, x2, y2) in pixels of the original image, origin top-left, "
        "x1 <= x2, y1 <= y2. Tracked boxes may reach past the image edge."
    ),
]


class VsaModel(BaseModel):
    """Base of every contract model: unknown keys refused, instances immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FrameRef(VsaModel):
    """Where the exact JPEG of a frame lives: a record of the frames topic.

    Any service can fetch the image with (topic, partition, offset) instead of copying it down
    the pipeline; camera_id and frame_seq let the reader check it fetched the right record.
    """

    topic: KafkaTopicName = Field(description="Full name of the frames topic (with any prefix).")
    partition: int = Field(ge=0, le=2**31 - 1, description="Partition of the frame record.")
    offset: NonNegInt64 = Field(description="Offset of the frame record in its partition.")
    camera_id: CameraId
    frame_seq: FrameSeq


def check_frame_ref(frame: FrameRef, camera_id: str, frame_seq: int | None) -> None:
    """Raise ValueError unless ``frame`` belongs to ``camera_id`` (and ``frame_seq`` if given)."""
    if frame.camera_id != camera_id:
        raise ValueError(
            f"frame.camera_id {frame.camera_id!r} differs from camera_id {camera_id!r}"
        )
    if frame_seq is not None and frame.frame_seq != frame_seq:
        raise ValueError(f"frame.frame_seq {frame.frame_seq} differs from frame_seq {frame_seq}")
