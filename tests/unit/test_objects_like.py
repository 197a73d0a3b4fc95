"""Object documents and image-to-image queries (issue 14 point 2b), pure: which objects of a
keyframe get documents and how, the k-NN body with the filters and the query object inside,
object references, upload checks, the indexer's index set."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from vsa.schemas import FrameRef, Keyframe, TrackedObject
from vsa.services.api.params import like_query_from_params
from vsa.services.indexer.like import LikeQuery, ObjectRef, image_pixels, like_body, object_hit
from vsa.services.indexer.mapping import object_documents, objects_mapping
from vsa.services.indexer.search import QueryError
from vsa.services.indexer.settings import HnswSettings, IndexerSettings
from vsa.services.indexer.store import index_bodies

T0 = 1_767_279_600.0


def tracked(track_id: int, state: str) -> TrackedObject:
    return TrackedObject(
        track_id=track_id,
        xyxy=(10.0 * track_id, 20.0, 10.0 * track_id + 8, 60.0),
        class_id=0,
        class_name="person",
        score=0.8,
        velocity_px_s=(0.0, 0.0),
        age_frames=3,
        state=state,  # type: ignore[arg-type]
    )


def keyframe() -> Keyframe:
    ref = FrameRef(topic="frames", partition=1, offset=77, camera_id="cam:a", frame_seq=12)
    objects = [tracked(1, "confirmed"), tracked(2, "lost"), tracked(3, "confirmed")]
    return Keyframe(
        camera_id="cam:a",
        frame_seq=12,
        frame=ref,
        capture_ts=T0,
        reason="periodic",
        objects=objects,
    )


def test_only_objects_matched_on_the_frame_get_documents_with_their_vectors() -> None:
    vectors = np.eye(2, 4, dtype=np.float32)
    docs = object_documents(keyframe(), vectors, indexed_at=0.0)
    assert [doc_id for doc_id, _ in docs] == ["cam:a:12:1", "cam:a:12:3"]
    _, source = docs[1]
    assert set(source) == set(objects_mapping(HnswSettings(), 4)["properties"])
    assert source["track_id"] == 3
    assert source["xyxy"] == {"x1": 30.0, "y1": 20.0, "x2": 38.0, "y2": 60.0}
    assert source["appearance"] == [0.0, 1.0, 0.0, 0.0]
    assert source["frame"]["offset"] == 77
    with pytest.raises(ValueError, match="2 objects but 3 vectors"):
        object_documents(keyframe(), np.zeros((3, 4)))


def test_the_knn_body_filters_inside_and_leaves_the_query_object_out() -> None:
    query = LikeQuery(cameras=("gate",), classes=("person", "car"), k=7)
    body = like_body([0.5, 0.5], query, ef_search=100, exclude_id="gate:4:2")
    knn = body["query"]["knn"]["appearance"]
    assert knn["k"] == 7
    assert body["size"] == 7
    assert knn["filter"]["bool"]["filter"] == [
        {"terms": {"camera_id": ["gate"]}},
        {"terms": {"class_name": ["person", "car"]}},
    ]
    assert knn["filter"]["bool"]["must_not"] == [{"ids": {"values": ["gate:4:2"]}}]
    assert body["_source"] == {"excludes": ["appearance"]}
    assert "filter" not in like_body([1.0], LikeQuery(), 100)["query"]["knn"]["appearance"]


def test_a_hit_reports_the_cosine_and_the_object() -> None:
    _, source = object_documents(keyframe(), np.eye(2, 4, dtype=np.float32))[0]
    hit = object_hit({"_id": "cam:a:12:1", "_score": 0.9, "_source": source})
    assert hit.similarity == pytest.approx(0.8)
    assert (hit.camera_id, hit.frame_seq, hit.track_id) == ("cam:a", 12, 1)
    assert hit.xyxy == (10.0, 20.0, 18.0, 60.0)
    assert hit.to_json()["capture_time"].startswith("2026-01-01T15:00:00")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("gate/12/3", ("gate", 12, 3)), ("site/a/gate/0/1", ("site/a/gate", 0, 1))],
)
def test_object_references(text: str, expected: tuple[str, int, int]) -> None:
    ref = ObjectRef.parse(text)
    assert (ref.camera_id, ref.frame_seq, ref.track_id) == expected
    assert ref.doc_id == ":".join(str(v) for v in expected)


@pytest.mark.parametrize("text", ["gate", "gate/12", "gate/x/3", "/12/3", "gate/12/3/"])
def test_bad_object_references_say_the_form(text: str) -> None:
    with pytest.raises(QueryError, match="<camera_id>/<frame_seq>/<track_id>"):
        ObjectRef.parse(text)


def test_uploads_must_be_images() -> None:
    png = io.BytesIO()
    Image.new("L", (5, 3), 200).save(png, format="PNG")
    assert image_pixels(png.getvalue()).shape == (3, 5, 3)
    for data, message in ((b"", "empty"), (b"GIF89a....", "not a readable JPEG or PNG")):
        with pytest.raises(QueryError, match=message):
            image_pixels(data)


def test_url_parameters_of_like_searches() -> None:
    query = like_query_from_params({"camera": ["a,b"], "class": ["person"], "k": ["3"]})
    assert query.cameras == ("a", "b")
    assert query.k == 3
    with pytest.raises(QueryError, match="alert_kind"):
        like_query_from_params({"alert_kind": ["loitering"]})
    with pytest.raises(QueryError, match="k"):
        like_query_from_params({"k": ["500"]})


def test_the_objects_index_exists_only_with_index_objects() -> None:
    assert "vsa-objects" not in index_bodies(IndexerSettings())
    body = index_bodies(IndexerSettings(index_objects=True))["vsa-objects"]
    assert body["mappings"]["properties"]["appearance"]["dimension"] == 1280
    assert body["settings"]["knn"] is True
