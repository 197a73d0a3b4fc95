"""Metrics and health endpoints, served for real over HTTP on loopback."""

import json
import urllib.error
import urllib.request

from vsa.runtime.metrics import Health, ServiceMetrics, serve_http


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_metrics_health_and_readiness() -> None:
    metrics, health = ServiceMetrics("ingest"), Health()
    server = serve_http(metrics, health, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        metrics.count_in("frames", 3)
        metrics.count_dead_letter("frames")
        metrics.observe_batch(8, 0.012)
        status, body = _get(base + "/metrics")
        text = body.decode()
        assert status == 200
        assert 'vsa_messages_in_total{service="ingest",topic="frames"} 3.0' in text
        assert 'vsa_dead_letters_total{service="ingest",topic="frames"} 1.0' in text
        assert "vsa_batch_size_bucket" in text
        assert _get(base + "/healthz")[0] == 200
        assert _get(base + "/readyz")[0] == 503
        health.ready = True
        status, body = _get(base + "/readyz")
        assert status == 200
        assert json.loads(body)["ok"] is True
        assert _get(base + "/nope")[0] == 404
    finally:
        server.shutdown()


def test_consumer_lag_from_librdkafka_stats() -> None:
    metrics = ServiceMetrics("detector")
    stats = {
        "topics": {
            "frames": {"partitions": {"0": {"consumer_lag": 42}, "-1": {"consumer_lag": -1}}}
        }
    }
    metrics.update_lag_from_stats(json.dumps(stats))
    text = metrics.render().decode()
    assert 'vsa_consumer_lag{partition="0",service="detector",topic="frames"} 42.0' in text
    assert 'partition="-1"' not in text
