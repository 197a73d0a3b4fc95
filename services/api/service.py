"""The HTTP API process (``vsa search-api``): builds the parts from the settings, serves the app
with uvicorn, and stops on SIGTERM/SIGINT (open requests get a few seconds, the Kafka readers
stop, exit status 0).

Search comes from :class:`~vsa.services.indexer.settings.SearchSettings` (``VSA_SEARCH_``, the
address and port included), the rest from :class:`~.settings.ApiSettings` (``VSA_API_``).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from vsa.runtime.logs import event
from vsa.runtime.settings import load_settings
from vsa.services.indexer.alert_history import AlertHistory
from vsa.services.indexer.search import Searcher
from vsa.services.indexer.settings import SearchSettings

from .app import create_app, mount_console
from .cameras import CameraWatch
from .frames import FrameSource
from .live import AlertFeed
from .metrics import ApiMetrics
from .parts import ApiParts
from .server import ApiServer
from .settings import ApiSettings, exposure_problem

log = logging.getLogger("vsa.api")


def kafka_parts(api: ApiSettings, metrics: ApiMetrics) -> dict[str, Any]:
    """The live alert feed, the camera watch and the frame source (not started)."""
    cameras = CameraWatch(api.kafka, api.topics, api.camera_window_s, api.count_frames)

    def on_alert(alert: Any) -> None:
        metrics.stream_alerts.inc()
        cameras.add_alert(alert)

    feed = AlertFeed(
        api.kafka,
        api.topics.name("alerts"),
        queue_size=api.stream_queue,
        recent=api.stream_recent,
        max_clients=api.stream_max_clients,
        on_alert=on_alert,
        on_drop=metrics.stream_dropped.inc,
    )
    frames = FrameSource(api.kafka, api.topics, api.frame_timeout_s, api.tracks_scan)
    return {"feed": feed, "cameras": cameras, "frames": frames}


def build_parts(searcher: Searcher, api: ApiSettings, metrics: ApiMetrics) -> ApiParts:
    """Everything the API serves from; the Kafka readers only with ``api.kafka_features``."""
    history = AlertHistory(searcher.client, searcher.settings)
    extra = kafka_parts(api, metrics) if api.kafka_features else {}
    return ApiParts(searcher, history, camera_window_s=api.camera_window_s, **extra)


def start_parts(parts: ApiParts) -> None:
    for part in (parts.feed, parts.cameras):
        if part is not None:
            part.start()


def stop_parts(parts: ApiParts) -> None:
    for part in (parts.feed, parts.cameras):
        if part is not None:
            part.stop()
    if parts.frames is not None:
        parts.frames.close()


def make_server(searcher: Searcher, host: str, port: int) -> ApiServer:
    """An API over ``searcher`` and its alert history, without the Kafka parts (tests,
    embedding)."""
    parts = ApiParts(searcher, AlertHistory(searcher.client, searcher.settings))
    return ApiServer(create_app(parts), host, port)


def serve_api(config: Path | None, overrides: dict[str, Any], console: Path | None = None) -> int:
    """``vsa search-api``: serve until SIGTERM/SIGINT; 2 when exposing it is refused. With
    ``console`` (``vsa console``), that folder's web console is served at ``/`` too."""
    from vsa.services.indexer.embedder import make_embedder
    from vsa.services.indexer.store import make_client

    api = load_settings(ApiSettings)
    settings = load_settings(SearchSettings, config, **overrides)
    problem = exposure_problem(settings.api_host, api)
    if problem is not None:
        print(f"vsa search-api: {problem}", file=sys.stderr)
        return 2
    client = make_client(settings.opensearch, settings.request_timeout_s)
    searcher = Searcher(client, make_embedder(settings.embedding), settings)
    metrics = ApiMetrics()
    parts = build_parts(searcher, api, metrics)
    app = create_app(parts, api.auth, metrics)
    if console is not None:
        mount_console(app, console)
    server = ApiServer(app, settings.api_host, settings.api_port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    start_parts(parts)
    thread = server.start()
    host, port = settings.api_host, server.server_port
    event(log, "api_listening", host=host, port=port, index=searcher.index, auth=api.auth.mode)
    print(f"listening on http://{host}:{port}/search?q=... (OpenAPI: /docs)", flush=True)
    if console is not None:
        address = f"[{host}]" if ":" in host else host
        print(f"console: http://{address}:{port}/", flush=True)
    while not stop.wait(0.5) and thread.is_alive():
        pass
    if parts.feed is not None:  # open live streams end now, so the server stops without waiting
        parts.feed.stop()
    server.shutdown()
    stop_parts(parts)
    event(log, "api_stopped", port=port)
    return 0
