"""Semantic search over the captions index: validated queries, k-NN with filters, optional hybrid.

- :class:`SearchQuery` is the only way in: plain fields, validated and bounded (no query DSL
  from users). The CLI (``vsa search``) and the HTTP endpoint (``vsa search-api``) build it.
- The k-NN query runs on the embedding of the query text with the camera / time / class /
  alert-kind filters *inside* the ``knn`` clause (``knn.embedding.filter``), so the engine
  filters while it walks the graph and still returns k hits for a narrow filter (lucene and
  faiss engines; a post-filter would return fewer).
- ``collapse`` folds near-duplicate keyframes (same camera, same tracks, close in time,
  near-identical caption) into one hit with a count and a time range (:mod:`.collapse`); more
  candidates are fetched so that k groups can still come back.
- :meth:`Searcher.more_like` searches with a stored hit's caption, leaving out that hit (and,
  collapsed, its near-duplicates): "more like this".
- ``hybrid`` adds BM25 on the caption text. The neural-search plugin (and its ``hybrid`` query
  with score normalisation) is not installed on the local stack, so both rankings are fetched in
  one ``_msearch`` and fused here with reciprocal rank fusion: score = sum 1 / (c + rank).
  Cosine and BM25 scores live on different scales; ranks do not.

Query builders and the fusion are pure functions; :class:`Searcher` does the I/O.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, Final, TypeVar

from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import NotFoundError, OpenSearchException
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from typing_extensions import Self

from vsa.runtime.redact import mask_url
from vsa.schemas import ALERT_KINDS, AlertKind, CameraId, FrameRef
from vsa.schemas.codec import describe_validation_error
from vsa.schemas.common import ClassName

from .collapse import candidates_for, collapse_hits
from .embedder import Embedder
from .mapping import (
    F_ALERT_KINDS,
    F_CAMERA,
    F_CAPTION,
    F_CAPTIONER,
    F_CLASSES,
    F_EMBEDDING,
    F_FRAME,
    F_FRAME_SEQ,
    F_THUMBNAIL,
    F_TIME,
    F_TRACKS,
    ts_to_millis,
)
from .search_hits import DuplicateHit, SearchHit
from .settings import Engine, SearchSettings

__all__ = [
    "DuplicateHit",
    "HitNotFoundError",
    "QueryError",
    "SearchHit",
    "SearchQuery",
    "SearchUnavailableError",
    "Searcher",
    "parse_time",
    "search",
]

T = TypeVar("T")

MAX_QUERY_CHARS: Final = 500
MAX_K: Final = 100
#: Widest since..until window one query may ask for.
MAX_TIME_RANGE: Final = timedelta(days=366)
#: Most values of one filter (cameras, classes).
MAX_FILTER_VALUES: Final = 100

#: The vector is excluded from _source in the mapping already; say so for indices made by hand.
_SOURCE: Final = {"excludes": [F_EMBEDDING]}
_RELATIVE = re.compile(r"^(\d{1,6})\s*(s|m|h|d|w)$")
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class QueryError(ValueError):
    """A search request that is not valid; the message says which field and why."""


class SearchUnavailableError(Exception):
    """OpenSearch could not answer (down, timeout, index missing)."""


class HitNotFoundError(LookupError):
    """No keyframe with the id a "more like this" search started from."""


class WindowQuery(BaseModel):
    """A query of filters with an optional ``since`` .. ``until`` window (the subclass's fields):
    the window may not end before it starts, and errors are one-line :class:`QueryError` s."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="after")
    def _ordered_window(self) -> Self:
        since, until = getattr(self, "since", None), getattr(self, "until", None)
        if since is not None and until is not None and since > until:
            raise ValueError("since must not be after until")
        return self

    @classmethod
    def parse(cls, **fields: Any) -> Self:
        """Validate, turning pydantic's error into a one-line :class:`QueryError`."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise QueryError(describe_validation_error(exc)[0]) from exc


@contextmanager
def opensearch_answers(settings: SearchSettings, missing_index: str) -> Iterator[None]:
    """Turn OpenSearch failures inside the block into :class:`SearchUnavailableError`: one line
    naming the (masked) URL when it is unreachable, ``missing_index`` when the index is not
    there, the error otherwise."""
    try:
        yield
    except OpenSearchConnectionError as exc:
        where = f"OpenSearch at {mask_url(settings.opensearch.url)}"
        raise SearchUnavailableError(f"{where} is unreachable; retry later") from exc
    except NotFoundError as exc:
        raise SearchUnavailableError(missing_index) from exc
    except OpenSearchException as exc:
        raise SearchUnavailableError(f"OpenSearch failed: {type(exc).__name__}: {exc}") from exc


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)  # naive times are UTC, as stored


class SearchQuery(BaseModel):
    """What a user may ask: text plus optional filters. Every list filter matches any of its
    values (cameras a OR b); different filters all apply (camera AND time AND class)."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    text: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="Plain words.")
    cameras: tuple[CameraId, ...] = Field((), max_length=MAX_FILTER_VALUES)
    classes: tuple[ClassName, ...] = Field(
        (), max_length=MAX_FILTER_VALUES, description="Object classes, e.g. person, car."
    )
    alert_kinds: tuple[AlertKind, ...] = Field((), max_length=len(ALERT_KINDS))
    since: datetime | None = Field(None, description="Captured at or after (naive: UTC).")
    until: datetime | None = Field(None, description="Captured at or before (naive: UTC).")
    k: int = Field(10, ge=1, le=MAX_K, description="Hits to return.")
    hybrid: bool = Field(False, description="Fuse k-NN with BM25 on the caption text.")
    collapse: bool = Field(
        False,
        description="Fold near-duplicate keyframes (same camera, same tracks, close in time, "
        "near-identical caption) into one hit with a count and a time range.",
    )

    _utc_times = field_validator("since", "until")(_utc)

    @model_validator(mode="after")
    def _time_window(self) -> Self:
        if self.since is not None and self.until is not None:
            if self.since > self.until:
                raise ValueError("since must not be after until")
            if self.until - self.since > MAX_TIME_RANGE:
                raise ValueError(f"since..until spans more than {MAX_TIME_RANGE.days} days")
        return self

    @classmethod
    def parse(cls, **fields: Any) -> SearchQuery:
        """Validate, turning pydantic's error into a one-line :class:`QueryError`."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise QueryError(describe_validation_error(exc)[0]) from exc


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """ISO 8601 (``2026-11-21T08:00``, ``2026-11-21T08:00+01:00``; naive = UTC) or a time ago
    (``90s``, ``30m``, ``2h``, ``7d``, ``1w``)."""
    text = text.strip()
    match = _RELATIVE.match(text)
    if match:
        ago = timedelta(seconds=int(match.group(1)) * _UNIT_S[match.group(2)])
        try:
            return (now or datetime.now(timezone.utc)) - ago
        except OverflowError as exc:
            raise QueryError(f"time {text!r} reaches before year 1") from exc
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise QueryError(
            f"time {text!r}: expected ISO 8601 (2026-11-21T08:00Z) or an age like 2h, 7d"
        ) from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def filter_clauses(query: SearchQuery) -> list[dict[str, Any]]:
    """The filters of a query as OpenSearch ``bool.filter`` clauses (no scoring)."""
    terms = ((F_CAMERA, query.cameras), (F_CLASSES, query.classes))
    return terms_and_window((*terms, (F_ALERT_KINDS, query.alert_kinds)), query.since, query.until)


def terms_and_window(
    terms: Sequence[tuple[str, Sequence[str]]], since: datetime | None, until: datetime | None
) -> list[dict[str, Any]]:
    """``bool.filter`` clauses: a ``terms`` clause per field with values (any of them), and
    the capture-time window when either end is given."""
    clauses: list[dict[str, Any]] = [
        {"terms": {field: list(values)}} for field, values in terms if values
    ]
    if since is not None or until is not None:
        window: dict[str, Any] = {"format": "epoch_millis"}
        if since is not None:
            window["gte"] = ts_to_millis(since.timestamp())
        if until is not None:
            window["lte"] = ts_to_millis(until.timestamp())
        clauses.append({"range": {F_TIME: window}})
    return clauses


def knn_body(
    vector: Sequence[float], query: SearchQuery, size: int, ef_search: int, engine: Engine
) -> dict[str, Any]:
    """k-NN search body with the filters inside the ``knn`` clause (efficient filtering).

    ``ef_search`` goes per query for lucene and faiss (``method_parameters``); nmslib reads the
    index setting ``knn.algo_param.ef_search`` instead.
    """
    knn: dict[str, Any] = {"vector": [float(x) for x in vector], "k": size}
    clauses = filter_clauses(query)
    if clauses:
        knn["filter"] = {"bool": {"filter": clauses}}
    if engine != "nmslib":
        knn["method_parameters"] = {"ef_search": max(ef_search, size)}
    return {"size": size, "query": {"knn": {F_EMBEDDING: knn}}, "_source": _SOURCE}


def bm25_body(query: SearchQuery, size: int) -> dict[str, Any]:
    """BM25 on the caption text (english analyser) with the same filters."""
    return {
        "size": size,
        "query": {
            "bool": {
                "must": [{"match": {F_CAPTION: {"query": query.text}}}],
                "filter": filter_clauses(query),
            }
        },
        "_source": _SOURCE,
    }


def rrf_fuse(
    rankings: Sequence[Sequence[str]], rank_constant: int, k: int
) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: ids by sum over rankings of 1 / (rank_constant + rank), rank from
    1; ties keep the order of first appearance. Returns the best ``k`` (id, score)."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (rank_constant + rank)
    ordered = sorted(scores.items(), key=lambda item: -item[1])
    return ordered[:k]


def hit_from_source(
    doc_id: str, source: dict[str, Any], score: float, similarity: float | None
) -> SearchHit:
    """A :class:`SearchHit` from a document's ``_source``."""
    return SearchHit(
        doc_id=doc_id,
        score=score,
        similarity=similarity,
        camera_id=source[F_CAMERA],
        frame_seq=int(source[F_FRAME_SEQ]),
        capture_ts=int(source[F_TIME]) / 1000.0,
        caption=source[F_CAPTION],
        captioner=source.get(F_CAPTIONER, ""),
        classes=tuple(source.get(F_CLASSES, ())),
        track_ids=tuple(source.get(F_TRACKS, ())),
        alert_kinds=tuple(source.get(F_ALERT_KINDS, ())),
        frame=FrameRef.model_validate(source[F_FRAME]),
        thumbnail_jpeg=base64.b64decode(source.get(F_THUMBNAIL) or ""),
    )


def knn_hits(response: dict[str, Any]) -> list[SearchHit]:
    """Hits of a k-NN response, with the cosine recovered from the score (1 + cos) / 2."""
    return [
        hit_from_source(h["_id"], h["_source"], float(h["_score"]), 2 * float(h["_score"]) - 1)
        for h in response["hits"]["hits"]
    ]


def fuse_hybrid(
    knn_response: dict[str, Any], bm25_response: dict[str, Any], rank_constant: int, k: int
) -> list[SearchHit]:
    """Hybrid hits: RRF over the k-NN and BM25 rankings; similarity kept where k-NN found it."""
    by_id = {hit.doc_id: hit for hit in knn_hits(knn_response)}
    sources = {h["_id"]: h["_source"] for h in bm25_response["hits"]["hits"]}
    rankings = [list(by_id), list(sources)]
    hits = []
    for doc_id, score in rrf_fuse(rankings, rank_constant, k):
        known = by_id.get(doc_id)
        if known is not None:
            hits.append(replace(known, score=score))
        else:
            hits.append(hit_from_source(doc_id, sources[doc_id], score, None))
    return hits


def guarded(call: Callable[[], T], url: str, index: str) -> T:
    """Run an OpenSearch call, turning its failures into :class:`SearchUnavailableError` with a
    message for people (the URL masked)."""
    try:
        return call()
    except OpenSearchConnectionError as exc:  # refused, reset, timed out (a subclass)
        raise SearchUnavailableError(
            f"OpenSearch at {mask_url(url)} is unreachable; retry later"
        ) from exc
    except NotFoundError as exc:
        raise SearchUnavailableError(f"index {index} does not exist (run vsa indexer)") from exc
    except OpenSearchException as exc:
        raise SearchUnavailableError(f"OpenSearch failed: {type(exc).__name__}: {exc}") from exc


def without_hit(hits: Sequence[SearchHit], doc_id: str) -> list[SearchHit]:
    """``hits`` less the one that is, or holds as a duplicate, the keyframe ``doc_id``."""
    return [
        hit
        for hit in hits
        if hit.doc_id != doc_id and all(d.doc_id != doc_id for d in hit.duplicates)
    ]


def more_like_query(query: SearchQuery, caption: str) -> SearchQuery:
    """``query`` (its filters, k, hybrid, collapse) searching for a stored caption's words.

    Captions may be longer than a typed query may be; they come from the index, not a user."""
    return query.model_copy(update={"text": caption})


class Searcher:
    """Runs validated queries against the captions index. Thread-safe (the embedder locks)."""

    def __init__(self, client: Any, embedder: Embedder, settings: SearchSettings) -> None:
        self.client = client
        self.embedder = embedder
        self.settings = settings
        self.index = settings.index.captions_index

    def search(self, query: SearchQuery) -> list[SearchHit]:
        """Best ``query.k`` hits (collapsed groups when ``query.collapse``), best first;
        :class:`SearchUnavailableError` if OpenSearch fails."""
        return self._search(query, exclude=None)

    def more_like(self, doc_id: str, query: SearchQuery) -> list[SearchHit]:
        """Keyframes like the stored one ``doc_id``: its caption as the query text, with the
        filters, k and options of ``query`` (its text is ignored); the keyframe itself (and,
        collapsed, its near-duplicates) left out. :class:`HitNotFoundError` if there is no
        such keyframe."""
        caption = self._guard(lambda: self._caption_of(doc_id))
        return self._search(more_like_query(query, caption), exclude=doc_id)

    def _caption_of(self, doc_id: str) -> str:
        try:
            doc = self._call(
                self.client.get, index=self.index, id=doc_id, _source_includes=[F_CAPTION]
            )
        except NotFoundError as exc:
            if "index_not_found" in str(exc.error):
                raise
            raise HitNotFoundError(f"no keyframe {doc_id!r} in {self.index}") from exc
        return str(doc["_source"][F_CAPTION])

    def _search(self, query: SearchQuery, exclude: str | None) -> list[SearchHit]:
        vector = self.embedder.encode([query.text])[0].tolist()
        size = candidates_for(query.k, self.settings.collapse) if query.collapse else query.k
        size += exclude is not None
        hits = self._guard(lambda: self._ranked(vector, query, size))
        if query.collapse:
            hits = collapse_hits(hits, self.settings.collapse)
        if exclude is not None:
            hits = without_hit(hits, exclude)
        return hits[: query.k]

    def _ranked(self, vector: list[float], query: SearchQuery, size: int) -> list[SearchHit]:
        if not query.hybrid:
            body = self._knn(vector, query, size)
            return knn_hits(self._call(self.client.search, index=self.index, body=body))
        return self._hybrid(vector, query, size)

    def _guard(self, call: Callable[[], T]) -> T:
        return guarded(call, self.settings.opensearch.url, self.index)

    def _knn(self, vector: list[float], query: SearchQuery, size: int) -> dict[str, Any]:
        hnsw = self.settings.hnsw
        return knn_body(vector, query, size, hnsw.ef_search, hnsw.engine)

    def _hybrid(self, vector: list[float], query: SearchQuery, size: int) -> list[SearchHit]:
        each = max(size, self.settings.hybrid_candidates)
        header = {"index": self.index}
        body = [header, self._knn(vector, query, each), header, bm25_body(query, each)]
        knn_resp, bm25_resp = self._call(self.client.msearch, body=body)["responses"]
        for resp in (knn_resp, bm25_resp):
            if "error" in resp:
                raise SearchUnavailableError(f"OpenSearch failed: {resp['error']}")
        return fuse_hybrid(knn_resp, bm25_resp, self.settings.rrf_rank_constant, size)

    def _call(self, method: Any, **kwargs: Any) -> dict[str, Any]:
        result: dict[str, Any] = method(request_timeout=self.settings.request_timeout_s, **kwargs)
        return result


def search(
    client: Any, query: SearchQuery, embedder: Embedder, settings: SearchSettings | None = None
) -> list[SearchHit]:
    """One-shot search: ``Searcher(client, embedder, settings).search(query)``."""
    return Searcher(client, embedder, settings or SearchSettings()).search(query)
