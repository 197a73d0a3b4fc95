"""Two `vsa detector` processes in one consumer group share the cameras' partitions."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vsa.runtime.partition import partition_for_key
from vsa.runtime.settings import KafkaSettings, load_settings
from vsa.schemas import Detections
from vsa.services.ingest.config import CameraSpec, IngestSettings
from vsa.services.ingest.service import IngestService

from .test_detector import create_topics
from .test_ingest import read_frames
from .test_ingest_live import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 4
FRAMES = 48


def cameras_on_every_partition(vtest: Path) -> tuple[CameraSpec, ...]:
    """One camera per partition (ids chosen by the murmur2 partitioner), 2 frames/s of vtest."""
    chosen: dict[int, str] = {}
    index = 0
    while len(chosen) < PARTITIONS:
        camera_id = f"cam-{index}"
        chosen.setdefault(partition_for_key(camera_id, PARTITIONS), camera_id)
        index += 1
    return tuple(CameraSpec(camera_id=c, url=str(vtest), fps=2) for c in chosen.values())


def final_counts(log: str) -> dict[str, str]:
    """The fields of the ``detector_finished`` line of a process log."""
    line = next(line for line in log.splitlines() if "event=detector_finished" in line)
    return dict(re.findall(r"(\w+)=(\S+)", line))


def test_two_processes_share_the_partitions(
    kafka: KafkaSettings, unique_name: str, vtest: Path, tmp_path: Path
) -> None:
    names = create_topics(kafka, unique_name, partitions=PARTITIONS)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "VSA_DETECTOR_TOPICS__PREFIX": names.prefix,
        "VSA_DETECTOR_GROUP_ID": f"{unique_name}-group",
        "VSA_DETECTOR_IDLE_EXIT_S": "15",
        "VSA_DETECTOR_METRICS_PORT": "0",
        "VSA_DETECTOR_MAX_BATCH": "4",
        "VSA_DETECTOR_BACKEND": '{"type": "onnxruntime", "intra_op_num_threads": 1}',
    }
    logs = [tmp_path / f"detector-{i}.log" for i in range(2)]
    procs = []
    for log in logs:
        with log.open("w") as err:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "vsa", "detector"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
            )
    try:
        # Frames are produced only once both processes hold partitions, so neither can take
        # everything before the other joins.
        wait_for(
            lambda: all("event=partitions_assigned" in log.read_text() for log in logs),
            60,
            "both detectors to be assigned partitions",
        )
        ingest = load_settings(
            IngestSettings,
            None,
            kafka=kafka,
            topics=names,
            cameras=cameras_on_every_partition(vtest),
            max_frames=FRAMES,
            metrics_port=0,
        )
        assert IngestService(ingest).run().acked == FRAMES
        codes = [proc.wait(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    texts = [log.read_text() for log in logs]
    assert codes == [0, 0], texts
    counts = [final_counts(text) for text in texts]
    frames = [int(c["frames"]) for c in counts]
    assert all(n > 0 for n in frames), counts
    assert sum(frames) == FRAMES, counts
    partitions = [set(c["partitions"].split(",")) for c in counts]
    assert not partitions[0] & partitions[1], "a partition was worked by both"
    found = [
        Detections.from_bytes(m.value())
        for m in read_frames(kafka, names.name("detections"), FRAMES, timeout_s=30)
    ]
    assert len({(d.camera_id, d.frame_seq) for d in found}) == FRAMES
