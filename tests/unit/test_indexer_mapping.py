"""The captions/alerts mappings, templates and documents (pure), and the documented mapping in
docs/search-index.md staying in step with the code."""

from __future__ import annotations

import base64
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest

from vsa.runtime.settings import ConfigError, load_settings
from vsa.schemas import Alert, AlertSnapshot, FrameRef, make_alert_id
from vsa.services.appearance.settings import EMBEDDING_DIMS
from vsa.services.indexer.mapping import (
    alert_document,
    alerts_mapping,
    caption_doc_id,
    caption_document,
    captions_mapping,
    captions_settings,
    counts_mapping,
    index_template,
    objects_mapping,
)
from vsa.services.indexer.settings import HnswSettings, IndexerSettings, SearchSettings
from vsa.services.indexer.store import index_bodies
from vsa.services.indexer.synthetic import scene_description, synthetic_caption

DOC = Path(__file__).resolve().parents[2] / "docs" / "search-index.md"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 20


def test_captions_mapping_vector_text_filters_and_stored_fields() -> None:
    mapping = captions_mapping(HnswSettings(engine="faiss", m=32, ef_construction=256))
    props = mapping["properties"]
    assert mapping["dynamic"] == "strict"
    assert props["embedding"] == {
        "type": "knn_vector",
        "dimension": 384,
        "method": {
            "name": "hnsw",
            "space_type": "cosinesimil",
            "engine": "faiss",
            "parameters": {"m": 32, "ef_construction": 256},
        },
    }
    assert mapping["_source"] == {"excludes": ["embedding"]}
    assert props["caption"] == {"type": "text", "analyzer": "standard"}
    for keyword in ("camera_id", "classes", "alert_kinds", "captioner"):
        assert props[keyword]["type"] == "keyword"
    assert props["track_ids"]["type"] == "long"
    assert props["capture_time"]["format"] == "epoch_millis||strict_date_optional_time"
    assert props["thumbnail_jpeg"] == {"type": "binary", "doc_values": False}  # not searchable
    assert props["frame"] == {"type": "object", "enabled": False}  # stored, not indexed
    assert captions_mapping(HnswSettings(), "english")["properties"]["caption"]["analyzer"] == (
        "english"
    )


def test_captions_settings_ef_search_only_for_native_engines() -> None:
    lucene = captions_settings(HnswSettings(), 1, 0, "1s")
    assert lucene["knn"] is True
    assert "knn.algo_param.ef_search" not in lucene
    faiss = captions_settings(HnswSettings(engine="faiss", ef_search=77), 2, 1, "5s")
    assert faiss["knn.algo_param.ef_search"] == 77
    assert (faiss["number_of_shards"], faiss["number_of_replicas"]) == (2, 1)


def test_index_bodies_follow_settings() -> None:
    settings = IndexerSettings(
        index={"prefix": "site-a-"}, consume_alerts=False, consume_counts=False
    )
    assert list(index_bodies(settings)) == ["site-a-captions"]
    every = index_bodies(IndexerSettings())
    assert set(every) == {"vsa-captions", "vsa-alerts", "vsa-counts"}
    template = index_template("vsa-captions*", {"a": 1}, {"b": 2})
    assert template["index_patterns"] == ["vsa-captions*"]
    assert template["template"] == {"settings": {"a": 1}, "mappings": {"b": 2}}


def test_doc_ids_are_deterministic_and_unambiguous() -> None:
    assert caption_doc_id("gate", 42) == "gate:42"
    assert caption_doc_id("site:gate", 7) == "site:gate:7"
    assert caption_doc_id("site:gate", 7).rsplit(":", 1) == ["site:gate", "7"]


def test_caption_document_fields() -> None:
    caption = synthetic_caption(random.Random(3), "gate", 9, 1_700_000_000.25, thumbnail_jpeg=JPEG)
    vector = np.full(384, 1 / np.sqrt(384), dtype=np.float32)
    doc = caption_document(caption, vector, indexed_at=1_700_000_001.0)
    assert doc["camera_id"] == "gate"
    assert doc["frame_seq"] == 9
    assert doc["capture_time"] == 1_700_000_000_250
    assert doc["caption"] == caption.text
    assert doc["classes"] == [o.class_name for o in caption.objects]
    assert doc["frame"] == caption.frame.model_dump()
    assert base64.b64decode(doc["thumbnail_jpeg"]) == JPEG
    assert doc["indexed_at"] == 1_700_000_001_000
    assert len(doc["embedding"]) == 384
    assert doc["embedding"][0] == 0.051031  # 6 decimals: short JSON, < 5e-7 error
    assert set(doc) == set(captions_mapping(HnswSettings())["properties"])
    json.dumps(doc)


def test_alert_document_fields() -> None:
    alert = Alert(
        alert_id=make_alert_id("gate", "door", 3, 0),
        camera_id="gate",
        rule_id="door",
        kind="loitering",
        track_ids=[3],
        class_name="person",
        ts=1_700_000_000.0,
        frame_seq=5,
        snapshot=AlertSnapshot(
            frame=FrameRef(topic="frames", partition=1, offset=8, camera_id="gate", frame_seq=5),
            xyxy=(0.0, 0.0, 10.0, 20.0),
        ),
        details={"dwell_s": 45.0},
    )
    doc = alert_document(alert, indexed_at=0.0)
    assert doc["alert_id"] == alert.alert_id
    assert doc["capture_time"] == 1_700_000_000_000
    assert doc["details"] == {"dwell_s": 45.0}
    assert set(doc) == set(alerts_mapping()["properties"])


def test_documented_mapping_matches_code() -> None:
    """docs/search-index.md shows the default mappings verbatim (JSON blocks after a marker)."""
    text = DOC.read_text(encoding="utf-8")
    blocks = dict(re.findall(r"<!-- mapping:(\w+) -->\s*```json\n(.*?)```", text, flags=re.S))
    assert json.loads(blocks["captions"]) == captions_mapping(HnswSettings())
    assert json.loads(blocks["alerts"]) == alerts_mapping()
    assert json.loads(blocks["counts"]) == counts_mapping()
    assert json.loads(blocks["objects"]) == objects_mapping(HnswSettings(), EMBEDDING_DIMS)


def test_settings_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSA_INDEXER_HNSW__ENGINE", "faiss")
    monkeypatch.setenv("VSA_INDEXER_HNSW__M", "24")
    monkeypatch.setenv("VSA_INDEXER_INDEX__PREFIX", "site-b-")
    settings = load_settings(IndexerSettings)
    assert (settings.hnsw.engine, settings.hnsw.m) == ("faiss", 24)
    assert settings.index.captions_index == "site-b-captions"
    monkeypatch.setenv("VSA_INDEXER_HNSW__ENGINE", "annoy")
    with pytest.raises(ConfigError, match=r"hnsw\.engine"):
        load_settings(IndexerSettings)
    monkeypatch.delenv("VSA_INDEXER_HNSW__ENGINE")
    with pytest.raises(ConfigError, match="min_backoff_s"):
        load_settings(IndexerSettings, retry={"min_backoff_s": 5, "max_backoff_s": 1})
    with pytest.raises(ConfigError, match=r"index\.prefix"):
        load_settings(IndexerSettings, index={"prefix": "Upper Case"})
    monkeypatch.setenv("VSA_SEARCH_HNSW__EF_SEARCH", "256")
    assert load_settings(SearchSettings).hnsw.ef_search == 256


def test_synthetic_captions_are_varied_and_valid() -> None:
    rng = random.Random(0)
    texts = {scene_description(rng)[0] for _ in range(2000)}
    assert len(texts) > 1900
    caption = synthetic_caption(rng, "cam-1", 3, 1.0)
    assert caption.captioner == "synthetic"
    assert caption.to_bytes()
