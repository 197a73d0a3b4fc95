"""The API's paths, one router per area. Parameters are declared for the OpenAPI document and
checked by FastAPI (types, bounds); the query itself is built by :mod:`.params` from the raw
query string, the one place that knows every rule (comma lists, ages, unknown names)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import StringConstraints

from vsa.runtime.logs import event
from vsa.runtime.redact import mask_url
from vsa.schemas import ALERT_KINDS, FrameRef
from vsa.schemas.common import ID_PATTERN, INT64_MAX, TOPIC_NAME_PATTERN
from vsa.services.indexer.alert_history import MAX_ALERTS
from vsa.services.indexer.like import MAX_IMAGE_BYTES, LikeQuery, ObjectRef, ObjectSearcher
from vsa.services.indexer.mapping import alert_from_document
from vsa.services.indexer.search import (
    MAX_FILTER_VALUES,
    MAX_K,
    MAX_QUERY_CHARS,
    SearchHit,
    SearchQuery,
    guarded,
)

from .cameras import camera_statuses, last_alert_sources, last_alerts_body, newest_alerts
from .frames import draw_tracks
from .live import Client
from .metrics import ApiMetrics
from .models import (
    AlertsResponse,
    CamerasResponse,
    ErrorBody,
    HealthBody,
    ObjectHit,
    ObjectsResponse,
    SearchResponse,
    hit_model,
)
from .params import (
    ALERT_PARAMETERS,
    FRAME_PARAMETERS,
    LIKE_PARAMETERS,
    SEARCH_PARAMETERS,
    SIMILAR_PARAMETERS,
    STREAM_PARAMETERS,
    alert_query_from_params,
    check_names,
    grouped,
    like_query_from_params,
    query_from_params,
    stream_filter_from_params,
)
from .parts import ApiParts, need

log = logging.getLogger("vsa.api")

#: Longest raw value of one list parameter (it may hold comma-separated values).
MAX_LIST_VALUE: Final = 256
#: Longest query string, bytes as sent (percent-encoded); longer ones are refused with 414.
MAX_QUERY_BYTES: Final = 16 * 1024
HIT_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}:[0-9]{1,19}$"

ListValue = Annotated[str, StringConstraints(max_length=MAX_LIST_VALUE)]
TimeText = Annotated[
    str | None,
    Query(max_length=64, description="ISO 8601 (naive = UTC) or an age: 90s, 30m, 2h, 7d, 1w."),
]
Cameras = Annotated[
    list[ListValue] | None,
    Query(max_length=MAX_FILTER_VALUES, description="Camera ids; repeat or comma-separate."),
]
Classes = Annotated[
    list[ListValue] | None,
    Query(alias="class", max_length=MAX_FILTER_VALUES, description="Object classes: person, car."),
]
Kinds = Annotated[
    list[ListValue] | None,
    Query(
        max_length=len(ALERT_KINDS),
        description=f"Alert kinds: {', '.join(ALERT_KINDS)}.",
    ),
]
K = Annotated[int, Query(ge=1, le=MAX_K, description="Hits to return.")]
Hybrid = Annotated[bool, Query(description="Fuse k-NN with BM25 on the caption text.")]
Collapse = Annotated[
    bool, Query(description="Fold near-duplicate keyframes into one hit (count, time range).")
]

ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    400: {"model": ErrorBody, "description": "The request is not valid; the parameter named."},
    401: {"model": ErrorBody, "description": "Credentials missing or wrong (when required)."},
    414: {"model": ErrorBody, "description": "The query string is longer than 16 KiB."},
    503: {"model": ErrorBody, "description": "OpenSearch or Kafka cannot answer; retry."},
}
#: ERRORS for a route whose own media type is not JSON (its errors still are).
JSON_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    status: {
        "description": doc["description"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    for status, doc in ERRORS.items()
}
NOT_FOUND: Final[dict[int | str, dict[str, Any]]] = {
    404: {"model": ErrorBody, "description": "No such keyframe or frame (any more)."}
}


def strict(allowed: tuple[str, ...]) -> Any:
    """A dependency refusing a query string over :data:`MAX_QUERY_BYTES` (414), parameters not
    in ``allowed`` and single values given twice (400)."""

    def check(request: Request) -> None:
        size = len(request.scope.get("query_string", b""))
        if size > MAX_QUERY_BYTES:
            raise HTTPException(
                414, f"the query string has {size} bytes, more than {MAX_QUERY_BYTES}"
            )
        check_names(grouped(request.query_params.multi_items()), allowed)

    return Depends(check)


def raw_params(request: Request) -> dict[str, list[str]]:
    return grouped(request.query_params.multi_items())


def _search_response(
    query: SearchQuery, hits: list[SearchHit], started: float, like: str | None = None
) -> SearchResponse:
    took_ms = round((time.perf_counter() - started) * 1000, 1)
    event(log, "search", k=query.k, hybrid=query.hybrid, hits=len(hits), took_ms=took_ms, like=like)
    return SearchResponse(
        query=query, like=like, took_ms=took_ms, hits=[hit_model(h.to_json()) for h in hits]
    )


def search_options(
    camera: Cameras = None,
    class_: Classes = None,
    alert_kind: Kinds = None,
    since: TimeText = None,
    until: TimeText = None,
    k: K = 10,
    hybrid: Hybrid = False,
    collapse: Collapse = True,
) -> None:
    """The filters and options of /search and /search/similar, declared once: FastAPI checks
    their types and bounds and documents them; :func:`query_from_params` builds the query."""


def search_routes(parts: ApiParts) -> APIRouter:
    router = APIRouter(tags=["search"], responses=ERRORS)

    @router.get("/search", dependencies=[strict(SEARCH_PARAMETERS), Depends(search_options)])
    def search(
        request: Request,
        q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="Words.")],
    ) -> SearchResponse:
        """Keyframes whose captions match the words, best first, with the filters applied
        inside the k-NN search (a narrow filter still returns k hits)."""
        started = time.perf_counter()
        query = query_from_params(raw_params(request))
        return _search_response(query, parts.searcher.search(query), started)

    @router.get(
        "/search/similar/{hit_id}",
        dependencies=[strict(SIMILAR_PARAMETERS), Depends(search_options)],
        responses=NOT_FOUND,
    )
    def similar(
        request: Request,
        hit_id: Annotated[str, Path(pattern=HIT_ID_PATTERN, description="A hit's id.")],
    ) -> SearchResponse:
        """More like this: keyframes like the stored one (its caption is the query), that one
        and, collapsed, its near-duplicates left out; the same filters as /search."""
        started = time.perf_counter()
        query = query_from_params(raw_params(request), text=f"more like {hit_id}")
        hits = parts.searcher.more_like(hit_id, query)
        return _search_response(query, hits, started, like=hit_id)

    return router


def like_options(
    camera: Cameras = None,
    class_: Classes = None,
    since: TimeText = None,
    until: TimeText = None,
    k: K = 10,
) -> None:
    """The filters of the /objects/like paths (see :func:`like_query_from_params`)."""


def _objects_response(
    query: LikeQuery, like: str, hits: list[Any], started: float
) -> ObjectsResponse:
    took_ms = round((time.perf_counter() - started) * 1000, 1)
    event(log, "objects_like", k=query.k, hits=len(hits), took_ms=took_ms, like=like)
    body = [ObjectHit.model_validate(hit.to_json()) for hit in hits]
    return ObjectsResponse(query=query, like=like, took_ms=took_ms, hits=body)


def object_routes(parts: ApiParts) -> APIRouter:
    """Image-to-image search on the objects index (the indexer's index_objects)."""
    router = APIRouter(tags=["objects"], responses=ERRORS)

    def objects() -> ObjectSearcher:
        """The part, made on first use from the searcher's client and settings."""
        if parts.objects is None:
            parts.objects = ObjectSearcher(parts.searcher.client, parts.searcher.settings)
        return parts.objects

    @router.get(
        "/objects/like/{camera_id}/{frame_seq}/{track_id}",
        dependencies=[strict(LIKE_PARAMETERS), Depends(like_options)],
        responses=NOT_FOUND,
    )
    def like_object(
        request: Request,
        camera_id: Annotated[str, Path(pattern=ID_PATTERN, description="The object's camera.")],
        frame_seq: Annotated[int, Path(ge=0, le=INT64_MAX, description="Its keyframe.")],
        track_id: Annotated[int, Path(ge=1, le=INT64_MAX, description="Its track.")],
    ) -> ObjectsResponse:
        """Objects that look like a stored one (its crop's appearance vector is the query; the
        object itself is left out), most alike first, with the filters inside the k-NN."""
        started = time.perf_counter()
        query = like_query_from_params(raw_params(request))
        ref = ObjectRef(camera_id, frame_seq, track_id)
        like = f"{camera_id}/{frame_seq}/{track_id}"
        return _objects_response(query, like, objects().like_object(ref, query), started)

    @router.post(
        "/objects/like",
        dependencies=[strict(LIKE_PARAMETERS), Depends(like_options)],
        responses={413: {"model": ErrorBody, "description": "The image is over 8 MiB."}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                    "image/png": {"schema": {"type": "string", "format": "binary"}},
                },
            }
        },
    )
    async def like_image(request: Request) -> ObjectsResponse:
        """Objects that look like the uploaded image (JPEG or PNG, at most 8 MiB, sent as the
        request body; the whole image is the crop: crop it to the object first)."""
        started = time.perf_counter()
        query = like_query_from_params(raw_params(request))
        data = await request.body()
        if len(data) > MAX_IMAGE_BYTES:
            raise HTTPException(
                413, f"the image has {len(data)} bytes, more than {MAX_IMAGE_BYTES}"
            )
        hits = await run_in_threadpool(objects().like_image, data, query)
        return _objects_response(query, "image", hits, started)

    return router


async def stream_client(
    request: Request,
    camera: Cameras = None,
    kind: Kinds = None,
    last_event_id: Annotated[
        str | None,
        Header(max_length=64, description="The alert_id seen last: kept alerts after it."),
    ] = None,
) -> AsyncIterator[Client]:
    """A live-stream client for the request (validated, subscribed), unsubscribed when the
    stream ends; refusals (filters, too many streams, no feed) answer before the stream."""
    parts: ApiParts = request.app.state.parts
    metrics: ApiMetrics = request.app.state.metrics
    feed = need(parts.feed, "the live alert stream")
    filters = stream_filter_from_params(raw_params(request))
    client = feed.subscribe(filters, last_event_id)
    metrics.stream_clients.inc()
    try:
        yield client
    finally:
        feed.unsubscribe(client)
        metrics.stream_clients.dec()


def alert_routes(parts: ApiParts) -> APIRouter:
    router = APIRouter(tags=["alerts"])

    @router.get("/alerts", dependencies=[strict(ALERT_PARAMETERS)], responses=ERRORS)
    def alerts(
        request: Request,
        camera: Cameras = None,
        kind: Kinds = None,
        since: TimeText = None,
        until: TimeText = None,
        limit: Annotated[int, Query(ge=1, le=MAX_ALERTS, description="Newest alerts.")] = 20,
    ) -> AlertsResponse:
        """The alert history (the alerts index), newest first."""
        started = time.perf_counter()
        query = alert_query_from_params(raw_params(request))
        found = need(parts.history, "the alert history").list(query)
        took_ms = round((time.perf_counter() - started) * 1000, 1)
        return AlertsResponse(query=query, took_ms=took_ms, alerts=found)

    @router.get(
        "/alerts/stream",
        response_class=EventSourceResponse,
        dependencies=[strict(STREAM_PARAMETERS)],
        responses=JSON_ERRORS,
    )
    async def stream(
        client: Annotated[Client, Depends(stream_client)],
    ) -> AsyncIterator[ServerSentEvent]:
        """Alerts as they happen, as server-sent events (``event: alert``, ``id``: alert_id,
        ``data``: the alerts topic's JSON), from the alerts topic without a consumer group.
        Reconnecting with ``Last-Event-ID`` replays the kept alerts after that one."""
        while True:
            alert = await client.queue.get()
            if alert is None:
                return
            yield ServerSentEvent(
                data=alert.model_dump(mode="json"), event="alert", id=alert.alert_id
            )

    return router


def camera_routes(parts: ApiParts) -> APIRouter:
    router = APIRouter(tags=["cameras"], responses=ERRORS)

    @router.get("/cameras", dependencies=[strict(())])
    def cameras() -> CamerasResponse:
        """Every camera configured (camera-config) or seen lately, with its rates over the
        last window, counts since the API started, and its newest alert."""
        watch = need(parts.cameras, "cameras")
        snap = watch.snapshot()
        warnings: list[str] = []
        names = sorted({*snap.configs, *snap.totals})
        if parts.history is not None and names:
            try:
                found = _last_alerts(parts, names)
                snap = replace(snap, last_alerts=newest_alerts(snap.last_alerts, found))
            except Exception as exc:  # the rest of the page is still worth showing
                warnings.append(f"alert history: {exc}")
        problem = watch.problem()
        if problem is not None:
            warnings.append(problem)
        statuses = camera_statuses(snap, parts.camera_window_s)
        return CamerasResponse(window_s=snap.span_s, cameras=statuses, warnings=warnings)

    @router.get(
        "/frames/{topic}/{partition}/{offset}",
        dependencies=[strict(FRAME_PARAMETERS)],
        response_class=Response,
        responses={
            **NOT_FOUND,
            200: {"content": {"image/jpeg": {}}, "description": "The frame as a JPEG."},
        },
    )
    def frame(
        topic: Annotated[str, Path(max_length=249, pattern=TOPIC_NAME_PATTERN)],
        partition: Annotated[int, Path(ge=0, le=1_000_000)],
        offset: Annotated[int, Path(ge=0, le=INT64_MAX)],
        camera_id: Annotated[str, Query(max_length=128, pattern=ID_PATTERN)],
        frame_seq: Annotated[int, Query(ge=0, le=INT64_MAX)],
        boxes: Annotated[bool, Query(description="Draw the frame's tracked objects.")] = False,
    ) -> Response:
        """A frame by its reference (a hit's or an alert snapshot's ``frame``): the JPEG from
        the frames topic, with ``boxes`` the tracked objects of that frame drawn on it
        (``X-Vsa-Tracks``: drawn, or not-found when the tracks message was not found)."""
        source = need(parts.frames, "frames")
        ref = FrameRef(
            topic=topic,
            partition=partition,
            offset=offset,
            camera_id=camera_id,
            frame_seq=frame_seq,
        )
        record = source.frame(ref)
        if not boxes:
            return jpeg_response(record.jpeg, {})
        tracks = source.tracks(record.meta)
        if tracks is None:
            return jpeg_response(record.jpeg, {"X-Vsa-Tracks": "not-found"})
        return jpeg_response(draw_tracks(record.jpeg, tracks), {"X-Vsa-Tracks": "drawn"})

    return router


def _last_alerts(parts: ApiParts, cameras: list[str]) -> dict[str, Any]:
    history = need(parts.history, "the alert history")
    settings = history.settings
    response = guarded(
        lambda: history.client.search(
            index=history.index,
            body=last_alerts_body(cameras),
            request_timeout=settings.request_timeout_s,
        ),
        settings.opensearch.url,
        history.index,
    )
    alerts = [alert_from_document(source) for source in last_alert_sources(response)]
    return {alert.camera_id: alert for alert in alerts}


def jpeg_response(data: bytes, headers: dict[str, str]) -> Response:
    """A JPEG that never changes for its URL (a Kafka record): the browser may keep it."""
    return Response(
        data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600", **headers}
    )


def ops_routes(parts: ApiParts, metrics: ApiMetrics) -> APIRouter:
    router = APIRouter(tags=["operations"])
    health_doc: dict[int | str, dict[str, Any]] = {
        503: {"model": HealthBody, "description": "Not ready; ``blocked`` says why."}
    }

    @router.get("/healthz", response_model=HealthBody)
    def healthz() -> JSONResponse:
        """Liveness: the process answers."""
        return JSONResponse({"ok": True})

    @router.get("/readyz", response_model=HealthBody, responses=health_doc)
    def readyz() -> JSONResponse:
        """Readiness: OpenSearch answers (search needs it). Kafka parts that are not working
        (a topic not there yet) are listed under ``degraded`` without blocking."""
        body = readiness(parts)
        return JSONResponse(body, status_code=200 if body["ok"] else 503)

    @router.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus."}},
    )
    def prometheus() -> Response:
        """Prometheus metrics of the API."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return router


def readiness(parts: ApiParts) -> dict[str, Any]:
    """``{"ok": ..., "blocked": {...}, "degraded": {...}}`` (empty parts left out)."""
    blocked: dict[str, str] = {}
    searcher = parts.searcher
    if not searcher.client.ping(request_timeout=2):
        url = mask_url(searcher.settings.opensearch.url)
        blocked["opensearch"] = f"OpenSearch at {url} does not answer"
    degraded: dict[str, str] = {}
    checks: list[tuple[str, Callable[[], str | None] | None]] = [
        ("alerts_stream", parts.feed.problem if parts.feed else None),
        ("cameras", parts.cameras.problem if parts.cameras else None),
    ]
    for name, check in checks:
        problem = check() if check is not None else None
        if problem is not None:
            degraded[name] = problem
    body: dict[str, Any] = {"ok": not blocked}
    if blocked:
        body["blocked"] = blocked
    if degraded:
        body["degraded"] = degraded
    return body
