"""Prometheus metrics and the health/readiness endpoint of a service.

Every service serves, on one port (``metrics_port`` in its settings):

- ``/metrics``: Prometheus text format;
- ``/healthz``: 200 while the process loop is alive (liveness);
- ``/readyz``: 200 once the service is connected and doing work (readiness), 503 before and
  while something blocks its progress (Kafka unreachable, outputs unacknowledged, commits
  failing); the JSON body names each blocker.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


@dataclass
class ServiceMetrics:
    """The metrics every service exports, in a registry of its own (tests build several)."""

    service: str
    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )

    def __post_init__(self) -> None:
        labels = ["service", "topic"]
        r = self.registry
        self.messages_in = Counter("vsa_messages_in", "Messages consumed.", labels, registry=r)
        self.messages_out = Counter("vsa_messages_out", "Messages produced.", labels, registry=r)
        self.errors = Counter("vsa_errors", "Errors by kind.", ["service", "kind"], registry=r)
        self.dead_letters = Counter(
            "vsa_dead_letters", "Messages sent to the dead-letter topic.", labels, registry=r
        )
        self.latency = Histogram(
            "vsa_processing_seconds",
            "Processing time of one batch, seconds.",
            ["service"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "vsa_batch_size",
            "Messages per processed batch.",
            ["service"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "vsa_consumer_lag",
            "Messages behind the partition end.",
            ["service", "topic", "partition"],
            registry=r,
        )
        self.commit_failures = Counter(
            "vsa_commit_failures",
            "Offset commits that failed, by Kafka error and what the loop did: retry (kept for "
            "the next attempt) or abandon (no longer this member's offsets; redelivered to the "
            "next owner).",
            ["service", "error", "action"],
            registry=r,
        )
        self.batch_retries = Counter(
            "vsa_batch_retries",
            "Batches handled again because Kafka failed to acknowledge an output (retriable "
            "delivery errors); nothing of them was committed.",
            ["service", "error"],
            registry=r,
        )
        self.stale_batches = Counter(
            "vsa_stale_batches",
            "Batches handled but not written after the process had been frozen (SIGSTOP, a "
            "paused VM) past a third of its group session timeout: outcome lost (the group had "
            "given the partitions away) or unknown (the coordinator could not be asked; handled "
            "again later).",
            ["service", "outcome"],
            registry=r,
        )
        self.frames_dropped = Counter(
            "vsa_frames_dropped",
            "Frames dropped on purpose (sampling or back-pressure).",
            ["service", "camera_id", "reason"],
            registry=r,
        )

    def count_in(self, topic: str, n: int = 1) -> None:
        self.messages_in.labels(self.service, topic).inc(n)

    def count_out(self, topic: str, n: int = 1) -> None:
        self.messages_out.labels(self.service, topic).inc(n)

    def count_error(self, kind: str) -> None:
        self.errors.labels(self.service, kind).inc()

    def count_dead_letter(self, topic: str) -> None:
        self.dead_letters.labels(self.service, topic).inc()

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.labels(self.service).observe(size)
        self.latency.labels(self.service).observe(seconds)

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self.consumer_lag.labels(self.service, topic, str(partition)).set(max(0, lag))

    def update_lag_from_stats(self, stats_json: str) -> None:
        """Set consumer lag gauges from a librdkafka statistics JSON document."""
        self.set_lags(json.loads(stats_json))

    def set_lags(self, stats: dict[str, Any]) -> None:
        """Set consumer lag gauges from parsed librdkafka statistics."""
        for topic, tstats in stats.get("topics", {}).items():
            for part, pstats in tstats.get("partitions", {}).items():
                lag = pstats.get("consumer_lag", -1)
                if part != "-1" and lag >= 0:
                    self.consumer_lag.labels(self.service, topic, part).set(lag)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


@dataclass
class Health:
    """Liveness and readiness flags a service loop updates; read by the HTTP endpoint.

    ``ready`` says the service started and has work it can do; ``blockers`` hold what stops its
    progress right now (name -> one line for people), set and cleared by whoever sees it, so two
    causes (Kafka and OpenSearch down together) never clear each other. Ready means both.
    """

    ready: bool = False
    detail: dict[str, Any] = field(default_factory=dict)
    last_beat: float = field(default_factory=time.monotonic)
    stale_after_s: float = 60.0
    blockers: dict[str, str] = field(default_factory=dict)

    def beat(self) -> None:
        """Called by the service loop on every iteration: proves the loop is not stuck."""
        self.last_beat = time.monotonic()

    def block(self, name: str, reason: str) -> None:
        """Not ready because of ``name`` (e.g. ``kafka_produce``) until :meth:`unblock`."""
        self.blockers[name] = reason

    def unblock(self, name: str) -> None:
        self.blockers.pop(name, None)

    @property
    def alive(self) -> bool:
        return time.monotonic() - self.last_beat < self.stale_after_s

    @property
    def serving(self) -> bool:
        """Readiness as /readyz reports it: started, nothing blocking, loop alive."""
        return self.ready and not self.blockers and self.alive


class _Handler(BaseHTTPRequestHandler):
    metrics: ServiceMetrics
    health: Health

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, self.metrics.render(), CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/readyz"):
            health = self.health
            ok = health.alive if path == "/healthz" else health.serving
            blocked = {"blocked": dict(health.blockers)} if health.blockers else {}
            body = json.dumps({"ok": ok, **health.detail, **blocked}, default=str).encode()
            self._send(200 if ok else 503, body, "application/json")
        else:
            self._send(404, b"not found\n", "text/plain")

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The prober gave up first (the process was frozen or very busy): no traceback.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        return  # scrapes every few seconds would flood the service log


def serve_http(
    metrics: ServiceMetrics, health: Health, host: str, port: int
) -> ThreadingHTTPServer:
    """Start the metrics/health server in a daemon thread; port 0 picks a free port."""
    handler = type("Handler", (_Handler,), {"metrics": metrics, "health": health})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as exc:  # a clear line instead of a bind traceback (port in use, bad host)
        from vsa.runtime.settings import ConfigError

        prefix = f"VSA_{metrics.service.upper()}_"
        raise ConfigError(
            f"cannot serve /metrics and the probes on {host}:{port}: {exc.strerror or exc}. "
            f"Pick another port with {prefix}METRICS_PORT=<port> (0: any free port) or "
            f"another address with {prefix}METRICS_HOST"
        ) from exc
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="vsa-http", daemon=True).start()
    return server
