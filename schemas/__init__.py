"""Topic contracts of vsa: one pydantic model per Kafka topic, with its wire codec.

=================  ==================  =====================================================
logical topic      model               Kafka value
=================  ==================  =====================================================
frames             FrameMeta           raw JPEG; metadata in ``vsa-*`` headers
detections         Detections          compact UTF-8 JSON
tracks             Tracks              compact UTF-8 JSON
alerts             Alert               compact UTF-8 JSON; alert_id from make_alert_id
keyframes          Keyframe            compact UTF-8 JSON
counts             Counts              compact UTF-8 JSON; count_id from make_count_id
captions           Caption             uint32_be(len(JSON)) + JSON + raw JPEG thumbnail
camera-config      CameraConfig        compact UTF-8 JSON (compacted topic, key camera_id)
dlq.<service>      DeadLetter          original bytes; error in ``vsa-dlq-*`` headers
=================  ==================  =====================================================

Every model forbids unknown keys, is frozen, and carries ``schema_version`` (1). Decoding goes
through ``Model.from_bytes`` / ``Model.from_headers`` / :func:`decode`, which raise
:class:`SchemaError` naming the topic, camera and field. JSON Schema files are generated into
``schemas/json/`` by ``python -m vsa.schemas.generate`` and checked for staleness by a test.
"""

from .alerts import (
    ALERT_ID_HEX_DIGITS,
    Alert,
    AlertSnapshot,
    Keyframe,
    KeyframeReason,
    make_alert_id,
)
from .calibration import Calibration
from .camera_config import (
    CameraConfig,
    CrossingDirection,
    CrowdingRule,
    Line,
    LineCrossingRule,
    LoiteringRule,
    Point,
    Rule,
    Zone,
    ZoneIntrusionRule,
    polygon_problem,
    segments_intersect,
)
from .captions import JPEG_MAGIC, MAX_THUMBNAIL_BYTES, Caption, ObjectCount
from .codec import FrameMessage, HeaderMessage, HeadersIn, JsonMessage
from .common import (
    ID_PATTERN,
    MAX_JSON_MESSAGE_BYTES,
    SCHEMA_VERSION,
    CameraId,
    FrameRef,
    SchemaError,
    VsaModel,
    Xyxy,
)
from .counts import Counts, make_count_id
from .detections import (
    AppearanceVectors,
    Detection,
    Detections,
    TrackedObject,
    Tracks,
    TrackState,
)
from .dlq import MAX_ERROR_MESSAGE_CHARS, DeadLetter
from .frames import FrameMeta
from .registry import HEADER_TOPICS, TOPIC_MODELS, VALUE_TOPICS, decode
from .rules import ALERT_KINDS, COUNT_KINDS, RULE_KINDS, AlertKind, CountKind, RuleConfig

__all__ = [
    "ALERT_ID_HEX_DIGITS",
    "ALERT_KINDS",
    "COUNT_KINDS",
    "HEADER_TOPICS",
    "ID_PATTERN",
    "JPEG_MAGIC",
    "MAX_ERROR_MESSAGE_CHARS",
    "MAX_JSON_MESSAGE_BYTES",
    "MAX_THUMBNAIL_BYTES",
    "RULE_KINDS",
    "SCHEMA_VERSION",
    "TOPIC_MODELS",
    "VALUE_TOPICS",
    "Alert",
    "AlertKind",
    "AlertSnapshot",
    "AppearanceVectors",
    "Calibration",
    "CameraConfig",
    "CameraId",
    "Caption",
    "CountKind",
    "Counts",
    "CrossingDirection",
    "CrowdingRule",
    "DeadLetter",
    "Detection",
    "Detections",
    "FrameMessage",
    "FrameMeta",
    "FrameRef",
    "HeaderMessage",
    "HeadersIn",
    "JsonMessage",
    "Keyframe",
    "KeyframeReason",
    "Line",
    "LineCrossingRule",
    "LoiteringRule",
    "ObjectCount",
    "Point",
    "Rule",
    "RuleConfig",
    "SchemaError",
    "TrackState",
    "TrackedObject",
    "Tracks",
    "VsaModel",
    "Xyxy",
    "Zone",
    "ZoneIntrusionRule",
    "decode",
    "make_alert_id",
    "make_count_id",
    "polygon_problem",
    "segments_intersect",
]
