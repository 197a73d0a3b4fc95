"""Issue 15 point 5: no credential reaches a log line, an error message or a dead-letter header."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from vsa.runtime import logs
from vsa.runtime.redact import mask_secrets, mask_url, register_model_secrets
from vsa.runtime.settings import KafkaSettings
from vsa.schemas.dlq import DeadLetter

CAMERA_SECRET = "s3cretCamPW"
SASL_SECRET = "saslPW-4711"
OS_SECRET = "osPW-0815x"
OS_URL_SECRET = "osUrlPW-42"
SECRETS = (CAMERA_SECRET, SASL_SECRET, OS_SECRET, OS_URL_SECRET)
VSA = str(Path(sys.executable).with_name("vsa"))


def test_mask_url_hides_userinfo_and_secret_query_values() -> None:
    assert mask_url("rtsp://admin:pw@host:554/x") == "rtsp://***@host:554/x"
    assert mask_url("rtsp://admin:p@ss@host/x") == "rtsp://***@host/x"
    assert mask_url("https://host/x?a=1&token=abc") == "https://host/x?a=1&token=***"
    assert mask_url("rtsp://host/x") == "rtsp://host/x"
    text = "cannot open rtsp://a:b@h/x: refused; also http://u:v@o:9200"
    assert mask_secrets(text) == "cannot open rtsp://***@h/x: refused; also http://***@o:9200"


@pytest.mark.parametrize("fmt", ["kv", "json"])
def test_logger_masks_urls_and_registered_secrets(
    fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VSA_LOG_FORMAT", fmt)
    register_model_secrets(KafkaSettings(sasl_password=SecretStr(SASL_SECRET)))
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    logs.setup_logging("test")
    log = logging.getLogger("vsa.test")
    url = f"rtsp://admin:{CAMERA_SECRET}@host/x"
    logs.event(log, "camera_running", url=url, note=f"password is {SASL_SECRET}")
    try:
        raise RuntimeError(f"cannot open {url}")
    except RuntimeError:
        log.exception("failed")
    out = stream.getvalue()
    assert "rtsp://***@host/x" in out
    assert CAMERA_SECRET not in out
    assert SASL_SECRET not in out


def test_dead_letter_header_masks_url_credentials() -> None:
    exc = ValueError(f"bad frame from rtsp://admin:{CAMERA_SECRET}@host/x")
    meta = DeadLetter.for_exception(
        "ingest", exc, source_topic="frames", source_partition=0, source_offset=1, failed_ts=1.0
    )
    headers = b"".join(value for _, value in meta.to_headers())
    assert CAMERA_SECRET.encode() not in headers
    assert b"rtsp://***@host/x" in headers


def _run(args: list[str], seconds: float) -> str:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "PLAIN",
        "KAFKA_SASL_USERNAME": "user",
        "KAFKA_SASL_PASSWORD": SASL_SECRET,
        "OPENSEARCH_URL": f"http://admin:{OS_URL_SECRET}@127.0.0.1:9",
        "OPENSEARCH_USERNAME": "admin",
        "OPENSEARCH_PASSWORD": OS_SECRET,
        "VSA_INGEST_METRICS_PORT": "0",
    }
    proc = subprocess.Popen(
        [VSA, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        out, _ = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    return out


def test_services_never_print_a_planted_secret() -> None:
    camera = f"gate=rtsp://admin:{CAMERA_SECRET}@127.0.0.1:9/x"
    outputs = {
        "ingest": _run(["ingest", "--camera", camera], 8),
        "ingest-bad-flag": _run(["ingest", "--camera", camera + ",fps=abc"], 30),
        "indexer": _run(["indexer", "--init-only"], 30),
    }
    # the flag is quoted in the error, masked
    assert "rtsp://***@127.0.0.1:9/x" in outputs["ingest-bad-flag"]
    for name, out in outputs.items():
        assert out.strip(), name
        for secret in SECRETS:
            assert secret not in out, f"{name} printed {secret}: {out[-2000:]}"
