"""Live sources: RTSP (Debian's ffmpeg pushing to rtsp-server-perl) and HTTP, with reconnects."""

from __future__ import annotations

import itertools
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vsa.runtime.settings import KafkaSettings
from vsa.services.ingest.config import CameraSpec
from vsa.services.ingest.service import IngestService

from .test_ingest import by_camera, make_settings, read_frames

pytestmark = [pytest.mark.integration, pytest.mark.slow]

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian's ffmpeg")
needs_rtsp_server = pytest.mark.skipif(
    shutil.which("rtsp-server-perl") is None, reason="needs Debian's rtsp-server-perl"
)
ENCODE = ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "10"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def wait_port(port: int, timeout_s: float = 10) -> None:
    def is_open() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_for(is_open, timeout_s, f"port {port}")


class RtspCamera:
    """rtsp-server-perl serving what ffmpeg pushes from the sample clip, looped in real time."""

    def __init__(self, clip: Path, log_dir: Path) -> None:
        self.clip, self.log_dir = clip, log_dir
        self.client_port, self.source_port = free_port(), free_port()
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.client_port}/cam"

    def start(self) -> None:
        log = (self.log_dir / "rtsp.log").open("ab")
        self.procs.append(
            subprocess.Popen(
                [
                    "rtsp-server-perl",
                    "--clientport",
                    str(self.client_port),
                    "--serverport",
                    str(self.source_port),
                ],
                stdout=log,
                stderr=log,
            )
        )
        wait_port(self.source_port)
        self.procs.append(
            subprocess.Popen(
                [
                    "ffmpeg",
                    "-nostdin",
                    "-v",
                    "error",
                    "-re",
                    "-stream_loop",
                    "-1",
                    "-i",
                    str(self.clip),
                    *ENCODE,
                    "-f",
                    "rtsp",
                    f"rtsp://127.0.0.1:{self.source_port}/cam",
                ],
                stdout=log,
                stderr=log,
            )
        )
        time.sleep(1.5)  # the stream is announced before clients can play it

    def kill(self) -> None:
        for proc in reversed(self.procs):
            proc.kill()
            proc.wait(timeout=10)
        self.procs.clear()


@pytest.fixture
def rtsp_camera(vtest: Path, tmp_path: Path) -> Iterator[RtspCamera]:
    camera = RtspCamera(vtest, tmp_path)
    camera.start()
    yield camera
    camera.kill()


def assert_seqs_account_for_drops(seqs: list[int], service: IngestService, camera: str) -> None:
    """frame_seq strictly increases; a live camera drops its oldest queued frame when it reads
    faster than Kafka takes frames, each drop is counted, and drops are the only gaps. (A drop in
    the moment between the last publish and the stop leaves no gap, hence ``<=``.)"""
    assert seqs == sorted(set(seqs)), "frame_seq strictly increasing"
    assert seqs[0] == 0
    assert len(set(range(seqs[-1] + 1)) - set(seqs)) <= service.dropped(camera)


def run_in_thread(service: IngestService) -> threading.Thread:
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    return thread


@needs_ffmpeg
@needs_rtsp_server
def test_rtsp_source_reconnects_after_the_server_restarts(
    kafka: KafkaSettings, unique_name: str, rtsp_camera: RtspCamera
) -> None:
    cams = [CameraSpec(camera_id="rtsp", url=rtsp_camera.url)]
    settings = make_settings(
        kafka, unique_name, cams, open_timeout_s=3, reconnect_min_s=0.5, reconnect_max_s=2
    )
    service = IngestService(settings)
    thread = run_in_thread(service)
    try:
        wait_for(lambda: service.published["rtsp"] >= 20, 30, "first RTSP frames")
        rtsp_camera.kill()
        status = service.camera_status()["rtsp"]
        wait_for(lambda: status.reconnects >= 1, 20, "the loss to be noticed")
        before = service.published["rtsp"]
        rtsp_camera.start()
        wait_for(lambda: service.published["rtsp"] >= before + 20, 40, "frames after reconnect")
        assert status.state == "running"
    finally:
        service.stop.set()
        thread.join(timeout=30)
    total = service.totals.published
    assert total == service.totals.acked
    frames = by_camera(read_frames(kafka, settings.topics.name("frames"), total))["rtsp"]
    seqs = [meta.frame_seq for meta, _ in frames]
    assert len(seqs) == total
    assert_seqs_account_for_drops(seqs, service, "rtsp")
    assert {(m.width, m.height) for m, _ in frames} == {(768, 576)}
    assert all(meta.source == "live" for meta, _ in frames)


@needs_ffmpeg
def test_http_stream_source(
    kafka: KafkaSettings, unique_name: str, vtest: Path, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/live.ts"
    log = (tmp_path / "http.log").open("ab")
    server = subprocess.Popen(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
            str(vtest),
            *ENCODE,
            "-f",
            "mpegts",
            "-listen",
            "1",
            url,
        ],
        stdout=log,
        stderr=log,
    )
    try:
        # No port probe here: ffmpeg's -listen 1 server serves exactly one client, and a probe
        # would be it. Ingest simply retries until the server listens.
        cams = [CameraSpec(camera_id="http", url=url, fps=5)]
        settings = make_settings(kafka, unique_name, cams, open_timeout_s=5)
        service = IngestService(settings)
        thread = run_in_thread(service)
        wait_for(lambda: service.published["http"] >= 15, 30, "HTTP frames")
        service.stop.set()
        thread.join(timeout=30)
    finally:
        server.kill()
        server.wait(timeout=10)
    frames = by_camera(
        read_frames(kafka, settings.topics.name("frames"), service.totals.published)
    )["http"]
    assert len(frames) == service.totals.published >= 15
    gaps = [
        b.pts_s - a.pts_s
        for (a, _), (b, _) in itertools.pairwise(frames)
        if a.pts_s is not None and b.pts_s is not None
    ]
    assert gaps
    assert min(gaps) >= 0.19  # sampled to 5 fps from a 10 fps stream


@needs_ffmpeg
def test_hls_playlist_source(
    kafka: KafkaSettings, unique_name: str, vtest: Path, tmp_path: Path
) -> None:
    import functools
    import http.server

    hls = tmp_path / "hls"
    hls.mkdir()
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-t",
            "8",
            "-i",
            str(vtest),
            *ENCODE,
            "-f",
            "hls",
            "-hls_time",
            "2",
            "-hls_playlist_type",
            "vod",
            str(hls / "index.m3u8"),
        ],
        check=True,
        timeout=120,
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(hls))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/index.m3u8"
        cams = [CameraSpec(camera_id="hls", url=url)]
        settings = make_settings(kafka, unique_name, cams, open_timeout_s=5, max_frames=60)
        service = IngestService(settings)
        totals = service.run()
    finally:
        server.shutdown()
    assert totals.published == totals.acked == 60
    frames = by_camera(read_frames(kafka, settings.topics.name("frames"), 60))["hls"]
    assert_seqs_account_for_drops([meta.frame_seq for meta, _ in frames], service, "hls")
