"""The captions topic (captioner -> indexer): a description of a keyframe plus a JPEG thumbnail.

Images travel as bytes, never base64 in JSON, so the Kafka value is a small binary framing::

    value = uint32_be(len(J)) || J || T

- ``J`` is the compact UTF-8 JSON of every field except ``thumbnail_jpeg`` (described by
  ``schemas/json/captions.schema.json``; a ``thumbnail_jpeg`` key in it is refused);
- ``T`` is the raw JPEG thumbnail, the rest of the value (empty when there is none).

A JSON value starts with ``{`` (0x7B), which as a length would claim ~2 GB, so a plain JSON
message sent to this topic by mistake is refused with a clear error rather than misread.
"""

from __future__ import annotations

import struct
from typing import Annotated, Any, ClassVar

import pydantic_core
from pydantic import ConfigDict, Field, StringConstraints, ValidationError, model_validator
from typing_extensions import Self

from .codec import FrameMessage, check_size, schema_error
from .common import MAX_JSON_MESSAGE_BYTES, ClassName, SchemaError, TrackId, VsaModel
from .detections import MAX_BOXES
from .rules import AlertKind

#: Largest thumbnail a caption may carry, bytes.
MAX_THUMBNAIL_BYTES = 32 * 1024

#: Every JPEG starts with the SOI marker followed by another marker.
JPEG_MAGIC = b"\xff\xd8\xff"

_LENGTH = struct.Struct(">I")

CaptionText = Annotated[str, StringConstraints(min_length=1, max_length=4000)]
CaptionerId = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class ObjectCount(VsaModel):
    """How many objects of one class the keyframe shows."""

    class_name: ClassName
    count: int = Field(ge=1, le=MAX_BOXES, description="Number of objects of this class, >= 1.")


def _drop_thumbnail_from_schema(schema: dict[str, Any]) -> None:
    """The JSON Schema describes the JSON part ``J`` only; the thumbnail follows it raw."""
    properties = schema.get("properties", {})
    properties.pop("thumbnail_jpeg", None)
    schema["required"] = [name for name in schema.get("required", []) if name != "thumbnail_jpeg"]


class Caption(FrameMessage):
    """Description of one keyframe, for search.

    Wire form: ``uint32_be(len(J)) || J || T`` where ``J`` is this JSON (everything but the
    thumbnail) and ``T`` the raw JPEG thumbnail (at most 32 KiB; empty when there is none).
    """

    model_config = ConfigDict(json_schema_extra=_drop_thumbnail_from_schema)

    LOGICAL_TOPIC: ClassVar[str] = "captions"

    text: CaptionText = Field(description="The description, 1..4000 characters.")
    objects: list[ObjectCount] = Field(
        default_factory=list,
        max_length=1000,
        description="Objects in the frame counted per class; each class at most once.",
    )
    track_ids: list[TrackId] = Field(
        default_factory=list, max_length=MAX_BOXES, description="Tracks the caption is about."
    )
    alert_kinds: list[AlertKind] = Field(
        default_factory=list, max_length=64, description="Kinds of the alerts behind the keyframe."
    )
    captioner: CaptionerId = Field(description="Which captioner/model wrote the text.")
    thumbnail_jpeg: bytes = Field(
        b"",
        max_length=MAX_THUMBNAIL_BYTES,
        exclude=True,
        description="JPEG thumbnail (<= 32 KiB), carried raw after the JSON, never in it.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.thumbnail_jpeg and not self.thumbnail_jpeg.startswith(JPEG_MAGIC):
            raise ValueError("thumbnail_jpeg is not a JPEG (no FF D8 FF start marker)")
        names = [obj.class_name for obj in self.objects]
        if len(set(names)) != len(names):
            raise ValueError(f"objects: a class appears more than once: {names}")
        return self

    def to_bytes(self) -> bytes:
        """The Kafka value: 4-byte big-endian JSON length, the JSON, the raw thumbnail."""
        json_part = self.model_dump_json().encode("utf-8")  # thumbnail excluded by the field
        return _LENGTH.pack(len(json_part)) + json_part + self.thumbnail_jpeg

    @classmethod
    def from_bytes(cls, data: bytes, *, max_bytes: int = MAX_JSON_MESSAGE_BYTES) -> Self:
        """Parse the framed value; :class:`SchemaError` for bad framing, JSON or fields."""
        data = bytes(data)
        topic = cls.LOGICAL_TOPIC
        check_size(topic, data, max_bytes)
        if len(data) < _LENGTH.size:
            raise SchemaError(f"{topic}: value of {len(data)} bytes has no 4-byte length prefix")
        (json_length,) = _LENGTH.unpack_from(data)
        end = _LENGTH.size + json_length
        if end > len(data):
            raise SchemaError(
                f"{topic}: length prefix says {json_length} bytes of JSON but only "
                f"{len(data) - _LENGTH.size} bytes follow (not a framed caption?)"
            )
        raw = _parse_json_part(topic, data[_LENGTH.size : end])
        raw["thumbnail_jpeg"] = data[end:]
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise schema_error(topic, exc, raw) from exc


def _parse_json_part(topic: str, json_part: bytes) -> dict[str, Any]:
    try:
        raw = pydantic_core.from_json(json_part, allow_inf_nan=False)
    except ValueError as exc:
        raise SchemaError(f"{topic}: JSON part is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise SchemaError(f"{topic}: JSON part must be an object, got {type(raw).__name__}")
    if "thumbnail_jpeg" in raw:
        raise SchemaError(
            f"{topic}: thumbnail_jpeg must follow the JSON as raw bytes, not sit inside it",
            field="thumbnail_jpeg",
        )
    return raw
