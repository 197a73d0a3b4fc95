"""Prometheus metrics of the HTTP API (``/metrics``), in a registry of their own, and the ASGI
middleware that counts every request by route template (never by raw path: ids and offsets in
paths would make one series per frame)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Routes that stay open for minutes: counted, but left out of the latency histogram.
STREAMING_ROUTES = frozenset({"/alerts/stream"})


@dataclass
class ApiMetrics:
    """Requests, latency, live streams and the alerts they carried."""

    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "vsa_api_requests", "HTTP requests by route, method and status.",
            ["route", "method", "status"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "vsa_api_request_seconds", "Time to answer a request (streams left out), seconds.",
            ["route"], buckets=_BUCKETS, registry=r,
        )  # fmt: skip
        self.stream_clients = Gauge(
            "vsa_api_stream_clients", "Live alert streams open now.", registry=r
        )
        self.stream_alerts = Counter(
            "vsa_api_stream_alerts", "Alerts read from the alerts topic for the live streams.",
            registry=r,
        )  # fmt: skip
        self.stream_dropped = Counter(
            "vsa_api_stream_dropped",
            "Alerts a slow live-stream client lost (its queue was full).",
            registry=r,
        )

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


class RequestMetrics:
    """ASGI middleware: one count per HTTP request (route template, method, status) and its
    latency."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._observe(scope, status["code"], time.perf_counter() - started)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        self.metrics.requests.labels(route, scope.get("method", "?"), str(status)).inc()
        if route not in STREAMING_ROUTES:
            self.metrics.latency.labels(route).observe(seconds)
