"""Which model describes which topic, and one ``decode`` for every topic with a structured value.

Logical topic names are the keys of :data:`TOPIC_MODELS`; the real topic name adds the
deployment's prefix (``TopicNames`` in ``vsa.runtime.settings``) and, for dead letters, the
service (``dlq.<service>``).
"""

from __future__ import annotations

from typing import Final, Literal, overload

from pydantic import BaseModel

from .alerts import Alert, Keyframe
from .camera_config import CameraConfig
from .captions import Caption
from .codec import HeaderMessage, JsonMessage
from .common import MAX_JSON_MESSAGE_BYTES, SchemaError
from .counts import Counts
from .detections import Detections, Tracks
from .dlq import DeadLetter
from .frames import FrameMeta

#: Logical topic name -> the model of its messages (for frames and dlq: of their headers).
TOPIC_MODELS: Final[dict[str, type[BaseModel]]] = {
    "frames": FrameMeta,
    "detections": Detections,
    "tracks": Tracks,
    "alerts": Alert,
    "keyframes": Keyframe,
    "counts": Counts,
    "captions": Caption,
    "camera-config": CameraConfig,
    "dlq": DeadLetter,
}

#: Topics whose value is opaque bytes and whose metadata is in headers (``from_headers``).
HEADER_TOPICS: Final = frozenset(
    name for name, model in TOPIC_MODELS.items() if issubclass(model, HeaderMessage)
)

#: Topics whose value ``decode`` parses (JSON; captions: length-prefixed JSON + JPEG).
VALUE_TOPICS: Final = frozenset(
    name for name, model in TOPIC_MODELS.items() if issubclass(model, JsonMessage)
)


@overload
def decode(topic: Literal["detections"], value: bytes, *, max_bytes: int = ...) -> Detections: ...
@overload
def decode(topic: Literal["tracks"], value: bytes, *, max_bytes: int = ...) -> Tracks: ...
@overload
def decode(topic: Literal["alerts"], value: bytes, *, max_bytes: int = ...) -> Alert: ...
@overload
def decode(topic: Literal["keyframes"], value: bytes, *, max_bytes: int = ...) -> Keyframe: ...
@overload
def decode(topic: Literal["counts"], value: bytes, *, max_bytes: int = ...) -> Counts: ...
@overload
def decode(topic: Literal["captions"], value: bytes, *, max_bytes: int = ...) -> Caption: ...
@overload
def decode(
    topic: Literal["camera-config"], value: bytes, *, max_bytes: int = ...
) -> CameraConfig: ...
@overload
def decode(topic: str, value: bytes, *, max_bytes: int = ...) -> JsonMessage: ...


def decode(topic: str, value: bytes, *, max_bytes: int = MAX_JSON_MESSAGE_BYTES) -> JsonMessage:
    """Parse the Kafka value of a record of logical topic ``topic`` into its model.

    Raises :class:`SchemaError` (a ValueError) with the topic, camera and field for: an unknown
    topic, a header topic (frames, dlq: use ``from_headers``), a null value (a tombstone), a
    value over ``max_bytes`` bytes, malformed JSON, wrong types or values, unknown keys and an
    unsupported ``schema_version``.
    """
    model = TOPIC_MODELS.get(topic)
    if model is None:
        raise SchemaError(f"unknown topic {topic!r}; known: {sorted(TOPIC_MODELS)}")
    if not issubclass(model, JsonMessage):
        raise SchemaError(
            f"{topic}: the value is opaque bytes; read the metadata with "
            f"{model.__name__}.from_headers(record headers)"
        )
    if not isinstance(value, bytes | bytearray | memoryview):
        raise SchemaError(f"{topic}: expected bytes, got {type(value).__name__} (a tombstone?)")
    return model.from_bytes(bytes(value), max_bytes=max_bytes)
