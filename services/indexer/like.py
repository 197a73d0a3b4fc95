"""Image-to-image search on the objects index: "find objects that look like this one".

The query is an appearance vector (:mod:`vsa.services.appearance`), either a stored object's
(``<camera_id>/<frame_seq>/<track_id>``: the object document's own vector; that document is left
out of the hits) or an image's (a JPEG or PNG file or upload, embedded whole as one crop:
crop it to the object first). The k-NN search runs with the camera, class and time filters
inside the ``knn`` clause, as caption search does (:mod:`.search`). Scores are cosine
similarities of the vectors (OpenSearch's ``(1 + cos) / 2`` turned back), -1..1.

:class:`LikeQuery` and :func:`like_body` are pure; :class:`ObjectSearcher` does the I/O.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final

import numpy as np
from pydantic import Field, field_validator

from vsa.schemas import CameraId, FrameRef
from vsa.schemas.common import ClassName

from .mapping import (
    F_APPEARANCE,
    F_BOX,
    F_CAMERA,
    F_CLASS,
    F_FRAME,
    F_FRAME_SEQ,
    F_TIME,
    F_TRACK,
    object_doc_id,
)
from .search import (
    MAX_FILTER_VALUES,
    MAX_K,
    HitNotFoundError,
    QueryError,
    WindowQuery,
    _utc,
    opensearch_answers,
    terms_and_window,
)
from .settings import SearchSettings

#: ``<camera_id>/<frame_seq>/<track_id>``; the camera id may itself contain ``/``.
_REF = re.compile(r"^(?P<camera>.+)/(?P<frame_seq>\d{1,19})/(?P<track>\d{1,19})$")
#: Largest image a query may upload, bytes.
MAX_IMAGE_BYTES: Final = 8 * 1024 * 1024


class LikeQuery(WindowQuery):
    """Filters and size of an image-to-image search (every list matches any of its values)."""

    cameras: tuple[CameraId, ...] = Field((), max_length=MAX_FILTER_VALUES)
    classes: tuple[ClassName, ...] = Field(
        (), max_length=MAX_FILTER_VALUES, description="Object classes, e.g. person, car."
    )
    since: datetime | None = Field(None, description="Captured at or after (naive: UTC).")
    until: datetime | None = Field(None, description="Captured at or before (naive: UTC).")
    k: int = Field(10, ge=1, le=MAX_K, description="Hits to return.")

    _utc_times = field_validator("since", "until")(_utc)


@dataclass(frozen=True)
class ObjectRef:
    """A stored object: the track ``track_id`` of ``camera_id`` on frame ``frame_seq``."""

    camera_id: str
    frame_seq: int
    track_id: int

    @classmethod
    def parse(cls, text: str) -> ObjectRef:
        """``<camera_id>/<frame_seq>/<track_id>``; :class:`QueryError` otherwise."""
        match = _REF.match(text.strip())
        if match is None:
            raise QueryError(
                f"object {text!r}: expected <camera_id>/<frame_seq>/<track_id>, e.g. cam-1/812/4"
            )
        return cls(match["camera"], int(match["frame_seq"]), int(match["track"]))

    @property
    def doc_id(self) -> str:
        return object_doc_id(self.camera_id, self.frame_seq, self.track_id)


@dataclass(frozen=True)
class ObjectHit:
    """One object that looks like the query."""

    doc_id: str
    similarity: float  # cosine of the two appearance vectors, -1..1
    camera_id: str
    frame_seq: int
    capture_ts: float
    track_id: int
    class_name: str
    xyxy: tuple[float, float, float, float]
    frame: FrameRef

    @property
    def capture_time(self) -> datetime:
        return datetime.fromtimestamp(self.capture_ts, timezone.utc)

    def to_json(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "similarity": self.similarity,
            "camera_id": self.camera_id,
            "frame_seq": self.frame_seq,
            "capture_time": self.capture_time.isoformat(),
            "track_id": self.track_id,
            "class_name": self.class_name,
            "xyxy": list(self.xyxy),
            "frame": self.frame.model_dump(),
        }


def like_filters(query: LikeQuery) -> list[dict[str, Any]]:
    """The query's filters as ``bool.filter`` clauses."""
    terms = ((F_CAMERA, query.cameras), (F_CLASS, query.classes))
    return terms_and_window(terms, query.since, query.until)


def like_body(
    vector: Sequence[float], query: LikeQuery, ef_search: int, exclude_id: str | None = None
) -> dict[str, Any]:
    """k-NN body on the appearance field, filters (and the query object left out) inside."""
    knn: dict[str, Any] = {"vector": [float(x) for x in vector], "k": query.k}
    bool_query: dict[str, Any] = {}
    clauses = like_filters(query)
    if clauses:
        bool_query["filter"] = clauses
    if exclude_id is not None:
        bool_query["must_not"] = [{"ids": {"values": [exclude_id]}}]
    if bool_query:
        knn["filter"] = {"bool": bool_query}
    knn["method_parameters"] = {"ef_search": max(ef_search, query.k)}
    return {
        "size": query.k,
        "query": {"knn": {F_APPEARANCE: knn}},
        "_source": {"excludes": [F_APPEARANCE]},
    }


def object_hit(raw: dict[str, Any]) -> ObjectHit:
    """An :class:`ObjectHit` from one hit of the response."""
    source = raw["_source"]
    box = source[F_BOX]
    return ObjectHit(
        doc_id=raw["_id"],
        similarity=round(2.0 * float(raw["_score"]) - 1.0, 6),
        camera_id=source[F_CAMERA],
        frame_seq=int(source[F_FRAME_SEQ]),
        capture_ts=int(source[F_TIME]) / 1000.0,
        track_id=int(source[F_TRACK]),
        class_name=source[F_CLASS],
        xyxy=(float(box["x1"]), float(box["y1"]), float(box["x2"]), float(box["y2"])),
        frame=FrameRef.model_validate(source[F_FRAME]),
    )


def image_pixels(data: bytes) -> Any:
    """An uploaded JPEG or PNG as an (H, W, 3) uint8 RGB array; :class:`QueryError` if it is
    not a readable image."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise QueryError("the image is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise QueryError(f"the image has {len(data)} bytes, more than {MAX_IMAGE_BYTES}")
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"), np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise QueryError(f"not a readable JPEG or PNG image: {exc}") from exc


class ObjectSearcher:
    """Image-to-image search against OpenSearch; the appearance embedder is loaded only for
    image queries (``embedder`` may be given, e.g. shared by the API)."""

    def __init__(self, client: Any, settings: SearchSettings, embedder: Any = None) -> None:
        self.client = client
        self.settings = settings
        self._embedder = embedder

    @property
    def index(self) -> str:
        return self.settings.index.objects_index

    def _missing(self) -> str:
        return (
            f"index {self.index} does not exist: run the indexer with index_objects "
            "(VSA_INDEXER_INDEX_OBJECTS=true)"
        )

    def vector_of(self, ref: ObjectRef) -> list[float]:
        """The stored appearance vector of an object; :class:`HitNotFoundError` if there is
        no such document, :class:`SearchUnavailableError` without the index."""
        from opensearchpy.exceptions import NotFoundError

        with opensearch_answers(self.settings, self._missing()):
            if not self.client.indices.exists(index=self.index):
                raise NotFoundError(404, "index_not_found_exception", self.index)
            try:
                doc = self.client.get(
                    index=self.index, id=ref.doc_id, _source_includes=[F_APPEARANCE]
                )
            except NotFoundError:  # the document (the index exists)
                doc = {"found": False}
        if not doc.get("found"):
            raise HitNotFoundError(
                f"no object {ref.camera_id}/{ref.frame_seq}/{ref.track_id} in {self.index} "
                "(only objects matched on keyframes are indexed)"
            )
        vector: list[float] = doc["_source"][F_APPEARANCE]
        return vector

    def like_object(self, ref: ObjectRef, query: LikeQuery) -> list[ObjectHit]:
        """Objects that look like a stored one (itself left out)."""
        return self.like_vector(self.vector_of(ref), query, exclude_id=ref.doc_id)

    def like_image(self, data: bytes, query: LikeQuery) -> list[ObjectHit]:
        """Objects that look like an image (the whole image is the crop)."""
        pixels = image_pixels(data)
        height, width = pixels.shape[:2]
        box = np.array([[0.0, 0.0, float(width), float(height)]])
        return self.like_vector(self.embedder.embed(pixels, box)[0].tolist(), query)

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from vsa.services.appearance.embedder import build_appearance_embedder

            self._embedder = build_appearance_embedder(self.settings.appearance)
        return self._embedder

    def like_vector(
        self, vector: Sequence[float], query: LikeQuery, exclude_id: str | None = None
    ) -> list[ObjectHit]:
        body = like_body(vector, query, self.settings.hnsw.ef_search, exclude_id)
        with opensearch_answers(self.settings, self._missing()):
            response = self.client.search(index=self.index, body=body)
        return [object_hit(raw) for raw in response["hits"]["hits"]]
