"""Wire codecs shared by the topic models: JSON values and Kafka-header metadata.

- :class:`JsonMessage` — the value is compact UTF-8 JSON (``to_bytes`` / ``from_bytes``).
- :class:`HeaderMessage` — the value is opaque bytes (a JPEG, a dead letter's original bytes)
  and the metadata travels in Kafka headers named ``<prefix><field-name-with-dashes>``
  (``to_headers`` / ``from_headers``).

Every decode path raises :class:`~vsa.schemas.common.SchemaError` (a ``ValueError``) naming the
topic, the camera when it can be read, and the offending field or header. A message with a
``schema_version`` other than :data:`~vsa.schemas.common.SCHEMA_VERSION` is refused with a message
that says exactly that, instead of a list of follow-on field errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationError, model_validator
from typing_extensions import Self

from .common import (
    MAX_JSON_MESSAGE_BYTES,
    SCHEMA_VERSION,
    CameraId,
    FrameRef,
    FrameSeq,
    SchemaError,
    UnixTs,
    VsaModel,
    check_frame_ref,
)

HeaderValue = bytes | str | None
#: What Kafka clients hand out: confluent-kafka and aiokafka give a list of (name, value) pairs
#: (value may be None), faust a mapping. None means "no headers".
HeadersIn = Iterable[tuple[str, HeaderValue]] | Mapping[str, HeaderValue] | None

_MAX_REPORTED_ERRORS = 5
_VERSION_DESCRIPTION = (
    f"Contract version; this code writes and reads {SCHEMA_VERSION} and refuses any other."
)


def field_path(loc: tuple[int | str, ...]) -> str:
    """Readable path of a pydantic error location: ``("rules", 2, "id")`` -> ``rules[2].id``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _short_repr(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_validation_error(
    exc: ValidationError, rename: Callable[[str], str] | None = None
) -> tuple[str, str | None]:
    """One line for a pydantic error: ``path: reason (got value); ...``, and the first path.

    ``rename`` maps a top-level field name to what the caller calls it (a header name).
    """
    errors = exc.errors(include_url=False)
    parts: list[str] = []
    first: str | None = None
    for err in errors[:_MAX_REPORTED_ERRORS]:
        loc = tuple(err["loc"])
        if rename is not None and loc and isinstance(loc[0], str):
            loc = (rename(loc[0]), *loc[1:])
        path = field_path(loc)
        first = first if first is not None else (path or None)
        reason = str(err["msg"]).removeprefix("Value error, ")
        got = "" if err["type"] == "missing" or not loc else f" (got {_short_repr(err['input'])})"
        parts.append(f"{path}: {reason}{got}" if path else f"{reason}{got}")
    if len(errors) > _MAX_REPORTED_ERRORS:
        parts.append(f"and {len(errors) - _MAX_REPORTED_ERRORS} more")
    return "; ".join(parts), first


def _bad_version(exc: ValidationError) -> tuple[bool, object]:
    for err in exc.errors(include_url=False):
        if tuple(err["loc"]) == ("schema_version",):
            return True, err["input"]
    return False, None


def unsupported_version_error(topic: str, version: object, where: str = "") -> SchemaError:
    """The error for a message of a schema version this code does not read."""
    return SchemaError(
        f"{topic}: unsupported schema_version {version!r}{where}; this code reads schema_version "
        f"{SCHEMA_VERSION} (upgrade the consumer, or replay the message to an older one)",
        field="schema_version",
    )


def _context(raw: object) -> str:
    """``camera 'x' frame_seq 7: `` from a raw message dict, so errors say whose message it is."""
    if not isinstance(raw, Mapping):
        return ""
    text = ""
    camera = raw.get("camera_id")
    if isinstance(camera, str):
        text = f"camera {_short_repr(camera)}"
        seq = raw.get("frame_seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            text += f" frame_seq {seq}"
    return f"{text}: " if text else ""


def schema_error(
    topic: str,
    exc: ValidationError,
    raw: object = None,
    rename: Callable[[str], str] | None = None,
) -> SchemaError:
    """Turn a pydantic error into a :class:`SchemaError` naming topic, camera and field."""
    bad, version = _bad_version(exc)
    if bad:
        return unsupported_version_error(topic, version)
    detail, first = describe_validation_error(exc, rename)
    context = _context(raw)
    if context and detail.startswith(context):
        context = ""  # a model validator already named the camera
    return SchemaError(f"{topic}: {context}{detail}", field=first)


def check_size(topic: str, data: bytes, max_bytes: int) -> None:
    """Refuse a value longer than ``max_bytes`` before spending time parsing it."""
    if len(data) > max_bytes:
        raise SchemaError(f"{topic}: message of {len(data)} bytes exceeds the limit of {max_bytes}")


def _peek_json(data: bytes) -> object:
    """Best-effort parse for error context only (the error path, never the hot path)."""
    try:
        return json.loads(data)
    except ValueError:
        return None


class JsonMessage(VsaModel):
    """A topic whose Kafka value is compact UTF-8 JSON (``to_bytes``, ``from_bytes``)."""

    #: Logical topic name (the key in ``TOPIC_MODELS``); used in error messages.
    LOGICAL_TOPIC: ClassVar[str] = "message"

    schema_version: Literal[1] = Field(SCHEMA_VERSION, description=_VERSION_DESCRIPTION)

    def to_bytes(self) -> bytes:
        """The Kafka value: compact UTF-8 JSON."""
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, *, max_bytes: int = MAX_JSON_MESSAGE_BYTES) -> Self:
        """Parse a Kafka value; :class:`SchemaError` for oversize, bad JSON, bad fields, version."""
        data = bytes(data)
        check_size(cls.LOGICAL_TOPIC, data, max_bytes)
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise schema_error(cls.LOGICAL_TOPIC, exc, _peek_json(data)) from exc

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Validate a decoded mapping (e.g. from YAML), with the same errors as ``from_bytes``."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise schema_error(cls.LOGICAL_TOPIC, exc, data) from exc


class FrameMessage(JsonMessage):
    """A JSON message derived from one frame: ``frame`` must be that camera's and that frame's."""

    camera_id: CameraId
    frame_seq: FrameSeq
    frame: FrameRef = Field(description="The frames-topic record holding this frame's JPEG.")
    capture_ts: UnixTs = Field(
        description="When the frame was captured (UNIX seconds), copied from the frame headers."
    )

    @model_validator(mode="after")
    def _frame_matches(self) -> Self:
        check_frame_ref(self.frame, self.camera_id, self.frame_seq)
        return self


def _header_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest text that parses back to the same float
    return str(value)


def _collect_headers(headers: HeadersIn, wanted: Iterable[str]) -> dict[str, HeaderValue]:
    """The wanted headers by name; others are ignored, and a repeated name keeps its last value."""
    names = set(wanted)
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
    return {name: value for name, value in pairs if name in names}


def _header_str(topic: str, name: str, value: HeaderValue) -> str:
    if value is None:
        raise SchemaError(f"{topic}: header {name!r} has no value", field=name)
    if isinstance(value, str):
        return value
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SchemaError(f"{topic}: header {name!r} is not valid UTF-8", field=name) from exc


class HeaderMessage(VsaModel):
    """Metadata carried in Kafka headers; the value of the record is opaque bytes.

    Header names are ``HEADER_PREFIX`` + the field name with ``_`` replaced by ``-``; values are
    UTF-8 text (integers in decimal, floats in Python's shortest round-trip form). A field whose
    default is None is optional and its header is left out when None; every other header is
    required.
    """

    LOGICAL_TOPIC: ClassVar[str] = "headers"
    HEADER_PREFIX: ClassVar[str] = "vsa-"

    schema_version: Literal[1] = Field(SCHEMA_VERSION, description=_VERSION_DESCRIPTION)

    @classmethod
    def header_name(cls, field: str) -> str:
        """Kafka header name of a field: ``frame_seq`` -> ``vsa-frame-seq``."""
        return cls.HEADER_PREFIX + field.replace("_", "-")

    @classmethod
    def header_names(cls) -> dict[str, str]:
        """Field name -> header name, in field order."""
        return {field: cls.header_name(field) for field in cls.model_fields}

    def to_headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers for this metadata, in field order; None fields are left out."""
        return [
            (self.header_name(field), _header_text(value).encode("utf-8"))
            for field, value in self.model_dump(mode="json").items()
            if value is not None
        ]

    @classmethod
    def from_headers(cls, headers: HeadersIn) -> Self:
        """Read the metadata back; :class:`SchemaError` names a missing or garbled header."""
        topic = cls.LOGICAL_TOPIC
        names = cls.header_names()
        found = _collect_headers(headers, names.values())
        cls._check_version_header(found)
        values: dict[str, object] = {"schema_version": SCHEMA_VERSION}
        for field, name in names.items():
            if field == "schema_version":
                continue
            if name in found:
                values[field] = _header_str(topic, name, found[name])
            elif cls._header_required(field):
                raise SchemaError(f"{topic}: missing header {name!r} ({field})", field=name)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            labels = {field: f"header {name!r}" for field, name in names.items()}
            error = schema_error(topic, exc, values, rename=lambda f: labels.get(f, f))
            loc = exc.errors(include_url=False)[0]["loc"]
            error.field = names.get(str(loc[0])) if loc else None
            raise error from exc

    @classmethod
    def _header_required(cls, field: str) -> bool:
        """Only fields that default to None may be left out of the headers."""
        info = cls.model_fields[field]
        return info.is_required() or info.default is not None

    @classmethod
    def _check_version_header(cls, found: Mapping[str, HeaderValue]) -> None:
        topic = cls.LOGICAL_TOPIC
        name = cls.header_name("schema_version")
        if name not in found:
            raise SchemaError(f"{topic}: missing header {name!r}", field=name)
        version = _header_str(topic, name, found[name])
        if version != str(SCHEMA_VERSION):
            raise unsupported_version_error(topic, version, f" in header {name!r}")
