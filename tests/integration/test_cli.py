"""The `vsa` command as users run it: ingest stops cleanly on SIGTERM with every frame
acknowledged, serves metrics and health, and bad configuration exits 2 with a clear message."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from vsa.runtime.settings import KafkaSettings

from .test_ingest import by_camera, read_frames
from .test_ingest_live import free_port, wait_for

pytestmark = pytest.mark.integration


def vsa(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vsa", *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except OSError:
        return 0, ""


def test_ingest_sigterm_finishes_cleanly(
    kafka: KafkaSettings, unique_name: str, vtest: Path
) -> None:
    prefix = f"{unique_name}."
    port = free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "VSA_TOPICS_NAMES__PREFIX": prefix,
        "VSA_INGEST_TOPICS__PREFIX": prefix,
        "VSA_INGEST_METRICS_PORT": str(port),
        "VSA_INGEST_METRICS_HOST": "127.0.0.1",
    }
    create = subprocess.run(
        [sys.executable, "-m", "vsa", "topics", "create", "--topic-prefix", prefix],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert create.returncode == 0, create.stderr
    proc = vsa(
        "ingest", "--camera", f"lobby={vtest},loop=true,realtime=true", "--no-progress", env=env
    )
    try:
        wait_for(lambda: http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 30, "readiness")
        wait_for(
            lambda: (
                'vsa_messages_out_total{service="ingest"'
                in http_get(f"http://127.0.0.1:{port}/metrics")[1]
            ),
            30,
            "frames in the metrics",
        )
        time.sleep(2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    stopped = [line for line in stderr.splitlines() if "event=stopped" in line]
    assert stopped, stderr
    fields = dict(part.split("=", 1) for part in stopped[-1].split() if "=" in part)
    published = int(fields["published"])
    assert published > 0
    assert fields["acked"] == fields["published"]
    assert fields["delivery_errors"] == "0"
    frames = by_camera(read_frames(kafka, f"{prefix}frames", published))["lobby"]
    assert len(frames) == published


def test_config_errors_exit_2_with_a_message(tmp_path: Path) -> None:
    bad = tmp_path / "cams.yaml"
    bad.write_text("cameras:\n  - {camera_id: 'bad id!', url: x.mp4}\n")
    proc = vsa("ingest", "--cameras-file", str(bad))
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "configuration error" in stderr
    assert "camera_id" in stderr
    proc = vsa("ingest")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "no cameras" in stderr


def test_produce_pushes_files_and_folders_as_cameras(
    kafka: KafkaSettings, unique_name: str, vtest: Path, tmp_path: Path
) -> None:
    import numpy as np
    import simplejpeg

    folder = tmp_path / "shots"
    folder.mkdir()
    for i in range(4):
        pixels = np.full((64, 96, 3), i * 40, dtype=np.uint8)
        (folder / f"{i}.jpg").write_bytes(simplejpeg.encode_jpeg(pixels, 90))
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "VSA_INGEST_TOPICS__PREFIX": f"{unique_name}.",
        "VSA_TOPICS_PARTITIONS": "2",
    }
    proc = vsa(
        "produce",
        str(vtest),
        str(folder),
        "--cameras",
        "2",
        "--fps",
        "1",
        "--create-topics",
        "--camera-prefix",
        "site",
        env=env,
    )
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr
    assert "published" in stdout  # the progress table's footer
    frames = by_camera(read_frames(kafka, f"{unique_name}.frames", 2 * 80 + 2 * 4))
    assert {k: len(v) for k, v in frames.items()} == {
        "site-0": 80,
        "site-1": 80,
        "site-2": 4,
        "site-3": 4,
    }
