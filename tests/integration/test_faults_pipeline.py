"""The whole pipeline through Kafka faults (issue 11): detector, tracker (Faust), captioner and
indexer as `vsa` processes on the test's own broker, fed the sample clip as two cameras with the
example alert rules, each case on its own topics and index (:mod:`.fault_scenarios`).

Every case is compared with an undisturbed run of the same frames (run once per session):

- every frame on the frames topic has its detections and its tracks message, and each camera's
  outputs were written in the order at-least-once allows (a redelivery rewinds and goes on
  frame by frame; a late write by a zombie would jump);
- detections, tracks (track ids and boxes) and keyframes equal the undisturbed run's, frame by
  frame: the tracker's table came back and its track ids continued;
- the alert_ids are those of the undisturbed run, each written with one content;
- every keyframe has its caption, and every caption is in the index;
- every SIGTERM (in an outage too) ends the process with exit 0 within the bound.

Cases: the broker stopped 30 s and restarted (second instances of every service get SIGTERM in
the outage, their partitions move after it; `vsa ingest` publishes a third, live camera through
it); SIGSTOP of a detector, then of a tracker, past the
session timeout while a second instance takes over, then SIGCONT; kill -9 of each service in
turn, restarted (the tracker with an empty data folder).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from vsa.devstack.pipeline import SERVICES, STOP_BOUND_S

from .fault_scenarios import LIVE_CAMERA, FaultRun, broker_outage, kill9, undisturbed, zombie
from .pipeline_harness import ClipFrame, clip_frames

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Frames per camera: 15 s of the clip, enough for 8 alerts and about 80 keyframes.
PER_CAMERA = 150
#: Bounds on a whole case (broker and services start, feed, fault, drain) on a busy 2-core box.
CASE_TIMEOUT_S = 1500


@pytest.fixture(scope="session")
def clip(vtest: Path) -> list[ClipFrame]:
    return clip_frames(vtest, PER_CAMERA, base_ts=float(int(time.time())))


@pytest.fixture(scope="session")
def baseline(
    clip: list[ClipFrame], opensearch_url: str, tmp_path_factory: pytest.TempPathFactory
) -> FaultRun:
    """The undisturbed run, once per session; itself complete (it is what cases compare to)."""
    run = undisturbed(clip, opensearch_url, tmp_path_factory.mktemp("undisturbed"))
    assert run.outcome is not None
    tracked = set(run.outcome.by_frame("tracks"))
    assert tracked == {f.key for f in clip}, "the undisturbed run missed frames"
    assert run.outcome.alerts(), "the rules fired no alert: nothing to compare"
    keyframes = set(run.outcome.by_frame("keyframes"))
    assert keyframes
    assert set(run.outcome.by_frame("captions")) == keyframes
    assert run.outcome.indexed == {f"{c}:{s}" for c, s in keyframes}
    assert_stopped_cleanly(run)
    return run


def assert_stopped_cleanly(run: FaultRun) -> None:
    for name, (code, seconds) in run.stops.items():
        assert code == 0, f"{run.name}: {name} exited {code} after SIGTERM"
        assert seconds < STOP_BOUND_S, f"{run.name}: {name} took {seconds:.0f} s to stop"


def report(run: FaultRun) -> str:
    return (
        f"{run.name}: {run.problems}\nnotes: {run.notes}\nresumed: {run.resumed}\n"
        f"stops: {run.stops}"
    )


@pytest.mark.timeout(CASE_TIMEOUT_S)
def test_broker_stopped_30s_every_service_rides_through(
    clip: list[ClipFrame], baseline: FaultRun, opensearch_url: str, tmp_path: Path, vtest: Path
) -> None:
    assert baseline.outcome is not None
    run = broker_outage(clip, baseline.outcome, opensearch_url, tmp_path, live_clip=vtest)
    assert run.problems == [], report(run)
    assert not [n for n in run.notes if "died" in n], report(run)
    assert set(run.stops) >= {f"{s}-2" for s in SERVICES} | {"ingest-1"}
    assert run.outcome is not None
    assert LIVE_CAMERA in run.outcome.cameras()  # ingest's camera went through it all too
    assert_stopped_cleanly(run)  # the second instances' SIGTERMs came in the outage
    for name, codes in run.during.items():  # each rode through it, saying it was not ready
        assert 503 in codes, f"{name} never said not ready in the outage: {codes}"


@pytest.mark.timeout(CASE_TIMEOUT_S)
def test_sigstopped_detector_and_tracker_write_nothing_for_lost_partitions(
    clip: list[ClipFrame], baseline: FaultRun, opensearch_url: str, tmp_path: Path
) -> None:
    assert baseline.outcome is not None
    run = zombie(clip, baseline.outcome, opensearch_url, tmp_path)
    assert run.problems == [], report(run)
    for fault, cameras in run.failover.items():  # the other instance took the partition over
        assert all(s is not None for s in cameras.values()), (fault, cameras)
    assert_stopped_cleanly(run)


@pytest.mark.timeout(CASE_TIMEOUT_S)
def test_kill_9_of_each_service_in_turn_loses_nothing(
    clip: list[ClipFrame], baseline: FaultRun, opensearch_url: str, tmp_path: Path
) -> None:
    assert baseline.outcome is not None
    run = kill9(clip, baseline.outcome, opensearch_url, tmp_path)
    assert run.problems == [], report(run)
    assert_stopped_cleanly(run)
