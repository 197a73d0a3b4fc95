"""The HTTP API without Kafka or OpenSearch: parameters, errors, credentials, the OpenAPI
document, the live stream's fan-out, the cameras view and frame drawing (pure parts and the
FastAPI app over stand-ins for the searcher and history)."""

from __future__ import annotations

import asyncio
import base64
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
import simplejpeg
from fastapi.testclient import TestClient

from vsa.demo_cameras import Tally
from vsa.schemas import (
    Alert,
    AlertSnapshot,
    CameraConfig,
    FrameMeta,
    FrameRef,
    Tracks,
    make_alert_id,
)
from vsa.services.api.app import create_app
from vsa.services.api.cameras import (
    CameraSnapshot,
    camera_statuses,
    last_alert_sources,
    last_alerts_body,
    newest_alerts,
    record_tally,
)
from vsa.services.api.frames import draw_tracks, is_frame_of
from vsa.services.api.live import CLOSED, AlertFeed, Client, missed_since, wanted
from vsa.services.api.params import alert_query_from_params, query_from_params
from vsa.services.api.parts import ApiParts
from vsa.services.api.settings import ApiSettings, AuthSettings, exposure_problem
from vsa.services.indexer.alert_history import AlertQuery
from vsa.services.indexer.search import (
    HitNotFoundError,
    QueryError,
    SearchQuery,
    SearchUnavailableError,
)
from vsa.services.indexer.search_hits import DuplicateHit, SearchHit
from vsa.services.indexer.settings import SearchSettings

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)
T0 = NOW.timestamp()


def alert(camera: str = "gate", kind: str = "loitering", seq: int = 1, track: int = 1) -> Alert:
    ref = FrameRef(topic="frames", partition=0, offset=seq, camera_id=camera, frame_seq=seq)
    return Alert(
        alert_id=make_alert_id(camera, "r", track, seq),
        camera_id=camera,
        rule_id="r",
        kind=kind,  # type: ignore[arg-type]
        track_ids=[track],
        class_name="person",
        ts=T0 + seq,
        frame_seq=seq,
        snapshot=AlertSnapshot(frame=ref, xyxy=(1.0, 2.0, 3.0, 4.0)),
    )


def hit(seq: int, duplicates: tuple[DuplicateHit, ...] = ()) -> SearchHit:
    return SearchHit(
        doc_id=f"gate:{seq}",
        score=0.9,
        similarity=0.8,
        camera_id="gate",
        frame_seq=seq,
        capture_ts=T0 + seq,
        caption="A white van parked near the gate.",
        captioner="scene",
        classes=("car",),
        track_ids=(1,),
        alert_kinds=(),
        frame=FrameRef(topic="frames", partition=0, offset=seq, camera_id="gate", frame_seq=seq),
        thumbnail_jpeg=b"\xff\xd8\xff",
        duplicates=duplicates,
    )


# --------------------------------------------------------------------------------------------
# parameters


def test_search_params_collapse_by_default_and_similar_takes_no_q() -> None:
    query = query_from_params({"q": ["van"], "camera": ["a,b", "c"]}, now=NOW)
    assert query.collapse is True
    assert query.cameras == ("a", "b", "c")
    assert query_from_params({"q": ["van"], "collapse": ["false"]}).collapse is False
    like = query_from_params({"k": ["3"], "class": ["car"]}, text="more like gate:1")
    assert (like.k, like.classes, like.text) == (3, ("car",), "more like gate:1")
    with pytest.raises(QueryError, match="unknown parameter 'q'"):
        query_from_params({"q": ["van"]}, text="more like gate:1")
    with pytest.raises(QueryError, match="collapse: expected true or false"):
        query_from_params({"q": ["van"], "collapse": ["sometimes"]})


def test_alert_params() -> None:
    query = alert_query_from_params(
        {"camera": ["gate,dock"], "kind": ["loitering"], "since": ["2h"], "limit": ["5"]}, NOW
    )
    assert query.cameras == ("gate", "dock")
    assert query.kinds == ("loitering",)
    assert query.since == NOW - timedelta(hours=2)
    assert query.limit == 5
    for params, words in [
        ({"kind": ["fire"]}, "kinds"),
        ({"limit": ["0"]}, "limit"),
        ({"limit": ["x"]}, "limit: expected an integer"),
        ({"limit": ["1", "2"]}, "give it once"),
        ({"q": ["van"]}, "unknown parameter 'q'"),
    ]:
        with pytest.raises(QueryError, match=words):
            alert_query_from_params(params)


# --------------------------------------------------------------------------------------------
# settings


def test_exposure_needs_credentials_or_a_yes() -> None:
    open_api = ApiSettings()
    assert exposure_problem("127.0.0.1", open_api) is None
    assert exposure_problem("::1", open_api) is None
    assert exposure_problem("localhost", open_api) is None
    problem = exposure_problem("0.0.0.0", open_api)
    assert problem is not None
    assert "VSA_API_AUTH__MODE" in problem
    keyed = ApiSettings(auth=AuthSettings(mode="api_key", api_key="k" * 16))
    assert exposure_problem("0.0.0.0", keyed) is None
    assert exposure_problem("10.0.0.5", ApiSettings(allow_open_exposure=True)) is None


def test_auth_settings_need_their_secret() -> None:
    with pytest.raises(ValueError, match="api_key"):
        AuthSettings(mode="api_key")
    with pytest.raises(ValueError, match="username and password"):
        AuthSettings(mode="basic", username="ops")
    with pytest.raises(ValueError, match="at least 16"):
        AuthSettings(mode="api_key", api_key="short")
    assert "secret-password" not in repr(
        AuthSettings(mode="basic", username="ops", password="secret-password")
    )


# --------------------------------------------------------------------------------------------
# the app over stand-ins


@dataclass
class FakeClient:
    up: bool = True

    def ping(self, request_timeout: float = 0) -> bool:
        return self.up


@dataclass
class FakeSearcher:
    """Records queries; answers with fixed hits, or raises what it is told to."""

    fail: Exception | None = None
    queries: list[SearchQuery] = field(default_factory=list)
    client: FakeClient = field(default_factory=FakeClient)
    settings: SearchSettings = field(default_factory=SearchSettings)

    def search(self, query: SearchQuery) -> list[SearchHit]:
        self.queries.append(query)
        if self.fail is not None:
            raise self.fail
        return [hit(46, (DuplicateHit("gate:47", 0.89, 47, T0 + 47),)), hit(10)][: query.k]

    def more_like(self, doc_id: str, query: SearchQuery) -> list[SearchHit]:
        if doc_id != "gate:46":
            raise HitNotFoundError(f"no keyframe {doc_id!r}")
        self.queries.append(query)
        return [hit(10)]


@dataclass
class FakeHistory:
    alerts: list[Alert] = field(default_factory=list)

    def list(self, query: AlertQuery) -> list[Alert]:
        return [a for a in self.alerts if wanted(a, query)][: query.limit]


def client_for(searcher: Any, auth: AuthSettings | None = None, **parts: Any) -> TestClient:
    return TestClient(create_app(ApiParts(searcher, **parts), auth))


def test_search_answers_hits_with_counts_and_time_ranges() -> None:
    searcher = FakeSearcher()
    body = client_for(searcher).get("/search?q=white+van&k=2").json()
    assert searcher.queries[0].collapse is True
    first = body["hits"][0]
    assert first["count"] == 2
    assert first["first_capture_time"] < first["last_capture_time"]
    assert first["duplicates"][0]["id"] == "gate:47"
    assert base64.b64decode(first["thumbnail_jpeg_b64"]) == b"\xff\xd8\xff"
    assert body["query"]["text"] == "white van"
    assert body["like"] is None


def test_more_like_this() -> None:
    searcher = FakeSearcher()
    api = client_for(searcher)
    body = api.get("/search/similar/gate:46?camera=gate&k=4").json()
    assert body["like"] == "gate:46"
    assert [h["id"] for h in body["hits"]] == ["gate:10"]
    assert searcher.queries[0].cameras == ("gate",)
    assert api.get("/search/similar/gate:9").status_code == 404
    response = api.get("/search/similar/gate:46?q=van")
    assert response.status_code == 400
    assert "unknown parameter 'q'" in response.json()["error"]
    assert api.get("/search/similar/not-an-id").status_code == 400


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("q=van&k=0", "k"),
        ("q=van&k=abc", "k"),
        ("k=3", "q (the search text)"),
        ("q=", "text"),
        ("q=van&body={}", "unknown parameter 'body'"),
        ("q=van&q=car", "give it once"),
        ("q=van&since=yesterday", "time 'yesterday'"),
        ("q=van&camera=bad%20camera", "cameras"),
    ],
)
def test_bad_requests_are_400_naming_the_parameter(query: str, words: str) -> None:
    response = client_for(FakeSearcher()).get(f"/search?{query}")
    assert response.status_code == 400
    assert words in response.json()["error"]


def test_unavailable_parts_are_503_and_crashes_500() -> None:
    down = SearchUnavailableError("OpenSearch at http://x is unreachable; retry later")
    api = client_for(FakeSearcher(fail=down))
    response = api.get("/search?q=van")
    assert response.status_code == 503
    assert response.json() == {"error": "OpenSearch at http://x is unreachable; retry later"}
    for path in ("/cameras", "/alerts/stream", "/frames/frames/0/1?camera_id=a&frame_seq=1"):
        response = api.get(path)
        assert response.status_code == 503, path
        assert "not configured" in response.json()["error"]
    crashing = TestClient(
        create_app(ApiParts(FakeSearcher(fail=RuntimeError("bug")))), raise_server_exceptions=False
    )
    response = crashing.get("/search?q=van")
    assert response.status_code == 500
    assert response.json() == {"error": "internal error: RuntimeError"}


def test_alert_history() -> None:
    history = FakeHistory([alert("gate", "loitering", 2), alert("dock", "crowding", 1)])
    api = client_for(FakeSearcher(), history=history)
    body = api.get("/alerts?camera=gate").json()
    assert [a["camera_id"] for a in body["alerts"]] == ["gate"]
    assert body["alerts"][0] == alert("gate", "loitering", 2).model_dump(mode="json")
    assert api.get("/alerts?kind=fire").status_code == 400


def test_probes_and_metrics() -> None:
    searcher = FakeSearcher()
    api = client_for(searcher)
    assert api.get("/healthz").json() == {"ok": True}
    assert api.get("/readyz").json() == {"ok": True}
    searcher.client.up = False
    response = api.get("/readyz")
    assert response.status_code == 503
    assert "opensearch" in response.json()["blocked"]
    api.get("/search?q=van")
    text = api.get("/metrics").text
    assert 'vsa_api_requests_total{method="GET",route="/search",status="200"} 1.0' in text
    assert 'route="/readyz",status="503"' in text
    assert api.get("/no/such/path").json()["error"] == "Not Found"


def test_openapi_document() -> None:
    api = client_for(FakeSearcher())
    spec = api.get("/openapi.json").json()
    assert set(spec["paths"]) >= {
        "/search",
        "/search/similar/{hit_id}",
        "/alerts",
        "/alerts/stream",
        "/cameras",
        "/frames/{topic}/{partition}/{offset}",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    responses = spec["paths"]["/search"]["get"]["responses"]
    assert "422" not in responses
    assert responses["400"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorBody")
    k = next(p for p in spec["paths"]["/search"]["get"]["parameters"] if p["name"] == "k")
    assert (k["schema"]["minimum"], k["schema"]["maximum"]) == (1, 100)
    assert "Alert" in spec["components"]["schemas"]  # the topic model, reused
    for page, script in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        html = api.get(page).text
        assert f'src="/docs-assets/{script}"' in html  # served here: works offline
        assert "cdn." not in html
        assert "fonts.googleapis" not in html
        assert api.get(f"/docs-assets/{script}").status_code == 200


def test_api_key_and_basic_credentials() -> None:
    key = "k" * 20
    api = client_for(FakeSearcher(), AuthSettings(mode="api_key", api_key=key))
    assert api.get("/search?q=van").status_code == 401
    assert api.get("/search?q=van", headers={"X-API-Key": "x" * 20}).status_code == 401
    assert api.get("/search?q=van", headers={"X-API-Key": key}).status_code == 200
    assert api.get("/search?q=van", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert api.get("/healthz").status_code == 200  # probes stay open
    assert api.get("/metrics").status_code == 200
    assert "APIKeyHeader" in api.get("/openapi.json").json()["components"]["securitySchemes"]

    basic = client_for(
        FakeSearcher(), AuthSettings(mode="basic", username="ops", password="pass-word")
    )
    refused = basic.get("/alerts")
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == 'Basic realm="vsa"'
    assert basic.get("/search?q=van", auth=("ops", "wrong-one")).status_code == 401
    assert basic.get("/search?q=van", auth=("ops", "pass-word")).status_code == 200
    # credentials are checked before the parameters: nothing is learnt without them
    assert basic.get("/search?k=0").status_code == 401


# --------------------------------------------------------------------------------------------
# live alerts


def test_stream_filters_and_replay() -> None:
    gate, dock = alert("gate", "loitering", 1), alert("dock", "crowding", 2)
    later = alert("gate", "crowding", 3)
    assert wanted(gate, AlertQuery())
    assert not wanted(dock, AlertQuery(cameras=("gate",)))
    assert not wanted(gate, AlertQuery(kinds=("crowding",)))
    recent = [gate, dock, later, gate]  # gate again: a redelivery
    assert missed_since(recent, None, AlertQuery()) == []
    assert missed_since(recent, "unknown", AlertQuery()) == []
    assert missed_since(recent, dock.alert_id, AlertQuery(cameras=("gate",))) == [later, gate]
    assert missed_since(recent, gate.alert_id, AlertQuery()) == []  # the last one counts


def test_feed_fans_out_from_another_thread_and_drops_for_slow_clients() -> None:
    dropped: list[int] = []
    feed = AlertFeed(None, "alerts", queue_size=2, recent=10, max_clients=2)  # type: ignore[arg-type]
    feed.on_drop = lambda: dropped.append(1)

    async def scenario() -> tuple[list[Alert | None], list[Alert | None]]:
        everything = feed.subscribe(AlertQuery())
        docks = feed.subscribe(AlertQuery(cameras=("dock",)))
        with pytest.raises(Exception, match="2 live streams"):
            feed.subscribe(AlertQuery())
        sent = [alert("gate", seq=1), alert("dock", seq=2), alert("gate", seq=3)]
        publisher = threading.Thread(target=lambda: [feed.publish(a) for a in sent])
        publisher.start()
        publisher.join()
        await asyncio.sleep(0)  # the callbacks queued by call_soon_threadsafe run first
        feed.stop()
        await asyncio.sleep(0)
        return drain(everything), drain(docks)

    everything, docks = asyncio.run(scenario())
    # the third did not fit; the end of the stream took the place of the oldest
    assert everything[-1] is CLOSED
    assert [a.frame_seq for a in everything if a] == [2]
    assert [a.frame_seq for a in docks if a] == [2]
    assert docks[-1] is CLOSED
    assert dropped == [1, 1]


def drain(client: Client) -> list[Alert | None]:
    items = []
    while not client.queue.empty():
        items.append(client.queue.get_nowait())
    return items


# --------------------------------------------------------------------------------------------
# cameras


def test_record_tally() -> None:
    assert record_tally("frames", b"gate", b"\xff\xd8") == ("gate", Tally(frames=1))
    assert record_tally("tracks", b"gate", b"{}") == ("gate", Tally(tracks=1))
    assert record_tally("detections", b"gate", b"not json") == ("gate", Tally(detections=1))


def test_camera_statuses() -> None:
    config = CameraConfig(
        camera_id="gate", enabled=False, source_url="rtsp://ops:s3cret@10.0.0.5/stream"
    )
    snap = CameraSnapshot(
        configs={"gate": config},
        window={"dock": Tally(frames=20, detections=20, objects=50, classes={"person": 50})},
        span_s=10.0,
        totals={"dock": Tally(frames=100, detections=90, objects=200, alerts=1)},
        seen_ago_s={"dock": 0.5},
        last_alerts={"dock": alert("dock")},
        frames_counted=True,
    )
    dock, gate = camera_statuses(snap, window_s=10.0)  # sorted by camera id
    assert (gate.camera_id, gate.enabled, gate.live) == ("gate", False, False)
    assert gate.last_seen_s is None
    assert gate.config is not None
    assert gate.config.source_url == "rtsp://***@10.0.0.5/stream"  # never the password
    assert gate.config.model_copy(update={"source_url": config.source_url}) == config
    assert (dock.live, dock.rates.frames, dock.rates.objects) == (True, 2.0, 5.0)
    assert dock.rates.classes == {"person": 5.0}
    assert (dock.counts.frames, dock.counts.alerts) == (100, 1)
    assert dock.last_alert == alert("dock")
    uncounted = camera_statuses(
        CameraSnapshot({}, {}, 1.0, {"dock": Tally(frames=3)}, {}, {}, False), 10.0
    )
    assert (uncounted[0].rates.frames, uncounted[0].counts.frames) == (None, None)


def test_newest_alerts_and_the_last_alerts_query() -> None:
    old, new = alert("gate", seq=1), alert("gate", seq=5)
    assert newest_alerts({"gate": old}, {"gate": new}) == {"gate": new}
    assert newest_alerts({"gate": new}, {"gate": old}) == {"gate": new}
    body = last_alerts_body(["gate", "dock"])
    assert body["size"] == 0
    assert body["aggs"]["cameras"]["terms"] == {"field": "camera_id", "size": 2}
    top = body["aggs"]["cameras"]["aggs"]["last"]["top_hits"]
    assert top == {"size": 1, "sort": [{"capture_time": {"order": "desc"}}]}
    response = {
        "aggregations": {
            "cameras": {"buckets": [{"key": "gate", "last": {"hits": {"hits": [{"_source": 1}]}}}]}
        }
    }
    assert last_alert_sources(response) == [1]  # type: ignore[comparison-overlap]
    assert last_alert_sources({}) == []


# --------------------------------------------------------------------------------------------
# frames


def test_draw_tracks_boxes_a_frame() -> None:
    image = np.full((120, 160, 3), 40, dtype=np.uint8)
    jpeg = bytes(simplejpeg.encode_jpeg(image, 95, colorspace="RGB"))
    ref = FrameRef(topic="frames", partition=0, offset=3, camera_id="gate", frame_seq=7)
    tracks = Tracks.model_validate(
        {
            "camera_id": "gate",
            "frame_seq": 7,
            "frame": ref.model_dump(),
            "capture_ts": T0,
            "tracks": [
                {
                    "track_id": 4,
                    "xyxy": [20, 30, 80, 100],
                    "class_id": 0,
                    "class_name": "person",
                    "score": 0.9,
                    "velocity_px_s": [0, 0],
                    "age_frames": 3,
                    "state": "confirmed",
                }
            ],
        }
    )
    drawn = np.asarray(simplejpeg.decode_jpeg(draw_tracks(jpeg, tracks), colorspace="RGB"))
    assert drawn.shape == image.shape
    assert np.abs(drawn[30, 50].astype(int) - 40).max() > 60  # the box's top edge
    assert np.abs(drawn[60, 140].astype(int) - 40).max() < 20  # far from it: untouched
    meta = FrameMeta(
        camera_id="gate", frame_seq=7, capture_ts=T0, width=160, height=120, source="file"
    )
    assert is_frame_of(meta, ref)
    assert not is_frame_of(meta, ref.model_copy(update={"frame_seq": 8}))
