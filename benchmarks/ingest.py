"""Ingest throughput: vtest.avi through decode, JPEG encode and produce into the local Kafka,
next to PyAV decode-only of the same file, measured in the same run.

Each scenario runs in a fresh subprocess so its peak RSS is its own. Frames are counted only
when Kafka acknowledged them. Usage::

    python benchmarks/ingest.py [--cameras 1 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av

from vsa.assets import fetch_vtest


def decode_only(clip: Path, cameras: int) -> dict[str, float]:
    """Decode the clip once per camera, cameras in parallel threads; no encode, no Kafka."""

    def one(_: int) -> int:
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            return sum(1 for _ in container.decode(stream))

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=cameras) as pool:
        frames = sum(pool.map(one, range(cameras)))
    return {"frames": frames, "seconds": time.perf_counter() - started}


def ingest(clip: Path, cameras: int, bootstrap: str) -> dict[str, float]:
    """The real ingest service: every frame decoded, JPEG-encoded, produced and acknowledged."""
    from vsa.runtime.kafka import ensure_topics
    from vsa.runtime.settings import KafkaSettings, TopicNames, load_settings
    from vsa.runtime.topics import TopicsSettings
    from vsa.services.ingest.config import CameraSpec, IngestSettings
    from vsa.services.ingest.service import IngestService

    kafka = load_settings(KafkaSettings, None, bootstrap_servers=bootstrap)
    names = TopicNames(prefix=f"bench-{uuid.uuid4().hex[:8]}.")
    topics = load_settings(TopicsSettings, None, names=names, frames_retention_ms=600_000)
    ensure_topics(kafka, {names.name("frames"): topics.specs()[names.name("frames")]})
    specs = tuple(CameraSpec(camera_id=f"cam-{i}", url=str(clip)) for i in range(cameras))
    settings = load_settings(
        IngestSettings,
        None,
        kafka=kafka,
        topics=names,
        cameras=specs,
        metrics_port=0,
        seq_recovery_scan=0,
    )
    service = IngestService(settings)
    started = time.perf_counter()
    totals = service.run()
    seconds = time.perf_counter() - started
    from vsa.runtime.kafka import delete_topics

    delete_topics(kafka, [names.name("frames")])
    return {
        "frames": totals.acked,
        "seconds": seconds,
        "mb": totals.bytes_published / 1e6,
        "errors": totals.delivery_errors,
    }


def run_scenario(kind: str, cameras: int, bootstrap: str) -> dict[str, float]:
    """Run one scenario in a subprocess; returns its numbers plus peak RSS in MB."""
    cmd = [
        sys.executable,
        __file__,
        "--scenario",
        kind,
        "--cameras",
        str(cameras),
        "--bootstrap",
        bootstrap,
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def _scenario_main(args: argparse.Namespace) -> None:
    clip = fetch_vtest()
    cams = args.cameras[0]
    result = (
        decode_only(clip, cams) if args.scenario == "decode" else ingest(clip, cams, args.bootstrap)
    )
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scenario", choices=["decode", "ingest"], help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", default="", help="Kafka; default: start the devstack.")
    args = parser.parse_args()
    if args.scenario:
        _scenario_main(args)
        return
    bootstrap = args.bootstrap
    if not bootstrap:
        from vsa.devstack import stack

        bootstrap = stack.up(opensearch=False).kafka_bootstrap
    rows = []
    for cams in args.cameras:
        for kind in ("decode", "ingest"):
            runs = [run_scenario(kind, cams, bootstrap) for _ in range(args.repeat)]
            fps = [r["frames"] / r["seconds"] for r in runs]
            rows.append(
                (
                    kind,
                    cams,
                    int(runs[0]["frames"]),
                    statistics.median(fps),
                    max(r["rss_mb"] for r in runs),
                )
            )
    print_table(rows, args.repeat)


def print_table(rows: list[tuple[str, int, int, float, float]], repeat: int) -> None:
    print(
        f"\ningest benchmark  {platform.node()}  {platform.processor() or platform.machine()}  "
        f"cores={__import__('os').cpu_count()}  median of {repeat} runs"
    )
    print(
        f"{'scenario':<34}{'cameras':>8}{'frames':>8}{'frames/s':>10}{'vs decode':>11}"
        f"{'peak RSS MB':>13}"
    )
    decode_fps = {cams: fps for kind, cams, _, fps, _ in rows if kind == "decode"}
    for kind, cams, frames, fps, rss in rows:
        label = (
            "PyAV decode only (baseline)" if kind == "decode" else "ingest: decode+JPEG+Kafka ack"
        )
        ratio = fps / decode_fps[cams]
        print(f"{label:<34}{cams:>8}{frames:>8}{fps:>10.0f}{ratio:>11.2f}{rss:>13.0f}")


if __name__ == "__main__":
    main()
