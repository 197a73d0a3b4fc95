"""The fault cases of issue 11, each a function that runs the whole pipeline on its own broker
(:mod:`.pipeline_harness`) and returns a :class:`FaultRun`: what came out, what differs from the
undisturbed run, how long each stage took to resume after the fault ended, and how every
SIGTERM ended. ``tests/integration/test_faults_pipeline.py`` asserts on it;
``benchmarks/faults.py`` prints it as tables.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from vsa.devstack.pipeline import SERVICES, ServiceProc, terminate_all, wait_for

from .pipeline_harness import (
    SESSION_TIMEOUT_S,
    WATCHED,
    ClipFrame,
    Feeder,
    Outcome,
    OutputWatch,
    OwnBroker,
    Pipeline,
    ReadinessWatch,
    compare,
    missing,
    own_broker,
)

#: Frames per second the feeder produces (both cameras together).
FEED_RATE = 20.0
#: Longest wait for a run to be complete and settled after its last frame was fed.
COMPLETE_S = 300.0
#: Output stages in pipeline order (``index``: caption documents in OpenSearch).
STAGES = ("detections", "tracks", "captions", "index")
STAGE_OF = {
    "detector": "detections",
    "tracker": "tracks",
    "captioner": "captions",
    "indexer": "index",
}


@dataclass
class FaultRun:
    """One run of the pipeline, disturbed or not, and what it showed."""

    name: str
    frames: list[ClipFrame]
    outcome: Outcome | None = None
    problems: list[str] = field(default_factory=list)
    #: service instance -> (exit code, seconds) of each SIGTERM, in the order sent
    stops: dict[str, tuple[int, float]] = field(default_factory=dict)
    #: fault name -> stage -> seconds from the fault's end to the stage's first new output
    resumed: dict[str, dict[str, float | None]] = field(default_factory=dict)
    #: fault name -> seconds from the fault's end until every check held and all committed
    caught_up: dict[str, float] = field(default_factory=dict)
    #: service instance -> /readyz codes seen while the fault lasted
    during: dict[str, set[int]] = field(default_factory=dict)
    #: fault name -> camera -> seconds from the fault's start to the camera's first output by
    #: the instance that took over
    failover: dict[str, dict[str, float | None]] = field(default_factory=dict)
    #: service instance -> readiness blockers it named while the fault lasted
    blockers: dict[str, list[str]] = field(default_factory=dict)
    #: service instance -> batches it dropped after a freeze (vsa_stale_batches_total)
    stale: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def missing(self, baseline: Outcome) -> dict[str, int]:
        """Per stage, how many items this run lost (:func:`missing`)."""
        assert self.outcome is not None
        found = missing(self.outcome, baseline, self.frames)
        return {stage: len(items) for stage, items in found.items()}

    def duplicates(self) -> dict[str, int]:
        """Per output topic, messages written again for a frame (or alert) already written."""
        assert self.outcome is not None
        topics = ("detections", "tracks", "alerts", "keyframes", "captions")
        return {t: self.outcome.duplicates(t) for t in topics}


@contextlib.contextmanager
def running_pipeline(
    name: str, opensearch_url: str, workdir: Path
) -> Iterator[tuple[OwnBroker, Pipeline, OutputWatch]]:
    """An own broker, the case's topics and rules, and a watch of its outputs; everything
    stopped (services killed if still running) at the end."""
    with own_broker(workdir / "broker") as broker:
        pipe = Pipeline(broker.bootstrap, opensearch_url, workdir, name)
        try:
            pipe.create()
            with OutputWatch(pipe) as watch, ReadinessWatch(pipe.running):
                yield broker, pipe, watch
        finally:
            pipe.close()


def complete(pipe: Pipeline, watch: OutputWatch, frames: list[ClipFrame]) -> bool:
    """Every frame tracked, every keyframe captioned and indexed, every group committed."""
    wanted = {f.key for f in frames} | watch.keys("frames")
    if not wanted <= watch.keys("tracks") or not wanted <= watch.keys("detections"):
        return False
    keyframes = watch.keys("keyframes")
    if not keyframes <= watch.keys("captions"):
        return False
    if not {f"{c}:{s}" for c, s in keyframes} <= set(watch.snapshot().indexed):
        return False
    return pipe.settled()


def finish(run: FaultRun, pipe: Pipeline, watch: OutputWatch, baseline: Outcome | None) -> None:
    """Wait until complete, SIGTERM every service, read every output, compare."""
    with contextlib.suppress(AssertionError):  # what is missing is reported by compare()
        wait_for(lambda: complete(pipe, watch, run.frames), COMPLETE_S, "pipeline complete", 1.0)
    run.stops.update(pipe.stop_all())
    watch.read_to(pipe.end_offsets(WATCHED))
    time.sleep(watch.every_s * 2)  # one more poll of the index
    run.outcome = watch.snapshot()
    if baseline is not None:
        run.problems = compare(run.outcome, baseline, run.frames)


def mark_caught_up(
    run: FaultRun, fault: str, since: float, pipe: Pipeline, watch: OutputWatch
) -> None:
    """Record when, after ``since``, the run was complete (all checks hold, all committed)."""
    with contextlib.suppress(AssertionError):
        wait_for(lambda: complete(pipe, watch, run.frames), COMPLETE_S, "caught up", 0.5)
        run.caught_up[fault] = time.monotonic() - since


def resumed(
    run: FaultRun, fault: str, since: float, watch: OutputWatch, stages: tuple[str, ...] = STAGES
) -> None:
    run.resumed[fault] = {stage: watch.first_after(stage, since) for stage in stages}


def timed(body: Callable[[FaultRun], None], run: FaultRun) -> FaultRun:
    started = time.monotonic()
    body(run)
    run.seconds = time.monotonic() - started
    return run


# ------------------------------------------------------------------------------------- cases


def undisturbed(frames: list[ClipFrame], opensearch_url: str, workdir: Path) -> FaultRun:
    """The baseline: the frames through the pipeline with nothing going wrong."""

    def body(run: FaultRun) -> None:
        with running_pipeline("undisturbed", opensearch_url, workdir) as (_, pipe, watch):
            pipe.start_all()
            feeder = Feeder(pipe.kafka, pipe.names.name("frames"), FEED_RATE)
            try:
                feeder.feed(frames)
                feeder.wait_fed()
                finish(run, pipe, watch, None)
            finally:
                feeder.close()

    return timed(body, FaultRun("undisturbed", frames))


def wait_progress(watch: OutputWatch, stage: str, count: int, timeout_s: float = 120.0) -> None:
    wait_for(lambda: watch.count(stage) >= count, timeout_s, f"{count} {stage}")


def note_readiness(run: FaultRun, services: list[ServiceProc], start: float, end: float) -> None:
    """The /readyz codes and blocker names each service gave from ``start`` to ``end``."""
    for svc in services:
        run.during[svc.name] = {code for t, code in svc.readiness if start <= t <= end}
        run.blockers[svc.name] = sorted(n for n, t in svc.blockers.items() if start <= t <= end)


def start_together(pipe: Pipeline, instances: list[tuple[str, str]]) -> dict[str, ServiceProc]:
    """Start ``(service, instance)`` processes at once, then wait until each is ready."""
    started = {f"{s}-{i}": pipe.start(s, i) for s, i in instances}
    for svc in started.values():
        pipe.wait_ready(svc)
    return started


def broker_outage(
    frames: list[ClipFrame],
    baseline: Outcome,
    opensearch_url: str,
    workdir: Path,
    outage_s: float = 30.0,
    second_instances: bool = True,
    live_clip: Path | None = None,
) -> FaultRun:
    """The single broker stopped (SIGTERM) for ``outage_s`` mid-stream and started again.

    One instance of each service rides through it. With ``second_instances`` a second
    instance of each, in the same group (so it holds one of the two partitions, with work in
    flight), gets SIGTERM in the middle of the outage and must exit 0 within the bound; its
    partition moves to the first instance once the broker is back (a rebalance after an
    outage: the tracker recovers that camera's state from the changelog and continues its
    track ids).

    With ``live_clip`` a `vsa ingest` process (the fifth service) publishes a third camera from
    it in real time, from shortly before the outage until after it: every frame it got onto
    the topic must have its detections, tracks and captions too (its capture times are the
    wall clock's, so it is left out of the comparison with the undisturbed run)."""

    def body(run: FaultRun) -> None:
        with running_pipeline("outage", opensearch_url, workdir) as (broker, pipe, watch):
            instances = [(s, "1") for s in SERVICES]
            if second_instances:
                instances += [(s, "2") for s in SERVICES]
            procs = start_together(pipe, instances)
            main = [procs[f"{s}-1"] for s in SERVICES]
            feeder = Feeder(pipe.kafka, pipe.names.name("frames"), FEED_RATE)
            third = len(frames) // 3
            try:
                feeder.feed(frames[:third])
                wait_progress(watch, "captions", 1)
                feeder.feed(frames[third : 2 * third])
                ingest = start_ingest(pipe, live_clip) if live_clip is not None else None
                if ingest is not None:
                    pipe.wait_ready(ingest)
                    main.append(ingest)
                wait_progress(watch, "detections", third + third // 4)
                down = time.monotonic()
                broker.stop()
                time.sleep(outage_s / 2)
                if second_instances:  # SIGTERM in the outage, all at once
                    run.stops.update(terminate_all([procs[f"{s}-2"] for s in SERVICES]))
                time.sleep(max(0.0, outage_s - (time.monotonic() - down)))
                broker.start()
                back = time.monotonic()
                note_readiness(run, main, down, back)
                run.notes.append(f"broker down {back - down:.0f} s (stop, {outage_s:.0f} s, start)")
                for svc in main:
                    if not svc.alive:
                        run.notes.append(f"{svc.name} died in the outage: {svc.log()[-2000:]}")
                feeder.feed(frames[2 * third :])
                if ingest is not None:  # a few of its frames after the outage, then SIGTERM
                    wait_for(partial(live_frame_after, watch, back), 120, "ingest publishing")
                    run.stops[ingest.name] = ingest.terminate()
                feeder.wait_fed()
                mark_caught_up(run, "broker outage", back, pipe, watch)
                resumed(run, "broker outage", back, watch)
                finish(run, pipe, watch, baseline)
            finally:
                feeder.close()

    return timed(body, FaultRun("broker outage", frames))


#: The camera `vsa ingest` publishes in the broker outage case, and its frame rate.
LIVE_CAMERA, LIVE_FPS = "cam-live", 1.0


def start_ingest(pipe: Pipeline, clip: Path) -> ServiceProc:
    """`vsa ingest` reading ``clip`` as a live camera (looped, paced in real time) into the
    case's frames topic, until SIGTERM."""
    camera = f"--camera={LIVE_CAMERA}={clip},realtime=true,loop=true,fps={LIVE_FPS:g}"
    return pipe.start("ingest", "1", [camera, "--no-progress"])


def live_frame_after(watch: OutputWatch, since: float) -> bool:
    return watch.first_after("frames", since, LIVE_CAMERA) is not None


def owned_partitions(svc: ServiceProc) -> int:
    """How many partitions a service instance holds now, from its /readyz detail."""
    detail = svc.readiness_body()
    if "partitions" in detail:  # the tracker: its detections partitions
        return len(detail["partitions"])
    return int(detail.get("assigned", 0))


def wait_partitions(svc: ServiceProc, count: int) -> None:
    wait_for(lambda: owned_partitions(svc) == count, 120, f"{svc.name} holding {count}")


def more_than(watch: OutputWatch, stage: str, count: int) -> bool:
    return watch.count_stage(stage) > count


def output_after(watch: OutputWatch, stage: str, since: float) -> bool:
    return watch.first_after(stage, since) is not None


def zombie(
    frames: list[ClipFrame], baseline: Outcome, opensearch_url: str, workdir: Path
) -> FaultRun:
    """SIGSTOP of one of two detectors, later of one of two trackers, for longer than the
    group session timeout while the other instance takes over its partition; then SIGCONT.

    The continued process must not write outputs (or tracker states) for the partition it
    lost, nor commit for it: :func:`compare` finds late writes (a camera's outputs jumping
    forward after a stale run, or ending on one), alert_ids with two contents and track ids
    that differ from the undisturbed run (a stale state written to the changelog)."""

    def body(run: FaultRun) -> None:
        with running_pipeline("zombie", opensearch_url, workdir) as (_, pipe, watch):
            procs = start_together(
                pipe,
                [
                    ("detector", "1"),
                    ("detector", "2"),
                    ("tracker", "1"),
                    ("tracker", "2"),
                    ("captioner", "1"),
                    ("indexer", "1"),
                ],
            )
            feeder = Feeder(pipe.kafka, pipe.names.name("frames"), FEED_RATE / 2)
            quarter = len(frames) // 4
            try:
                feeder.feed(frames[:quarter])
                wait_progress(watch, "captions", 1)
                for n, service in enumerate(("detector", "tracker"), start=1):
                    frozen, peer = procs[f"{service}-2"], procs[f"{service}-1"]
                    wait_partitions(frozen, 1)
                    middle = n * quarter + quarter // 2
                    feeder.feed(frames[n * quarter : middle])
                    wait_progress(watch, STAGE_OF[service], n * quarter + quarter // 4)
                    stopped = time.monotonic()
                    frozen.pause()
                    feeder.feed(frames[middle : (n + 1) * quarter])  # both cameras wait
                    wait_partitions(peer, 2)
                    time.sleep(max(0.0, stopped + 1.5 * SESSION_TIMEOUT_S - time.monotonic()))
                    frozen.resume()
                    fault = f"SIGSTOP {service}"
                    continued = time.monotonic()
                    run.failover[fault] = {
                        camera: watch.first_after(STAGE_OF[service], stopped, camera)
                        for camera in pipe.cameras
                    }
                    run.notes.append(f"{frozen.name} stopped {continued - stopped:.0f} s")
                    pipe.wait_ready(frozen)
                    resumed(run, fault, continued, watch)
                    run.stale[frozen.name] = frozen.metric("vsa_stale_batches_total")
                feeder.feed(frames[3 * quarter :])
                feeder.wait_fed()
                finish(run, pipe, watch, baseline)
            finally:
                feeder.close()

    return timed(body, FaultRun("SIGSTOP zombie", frames))


def kill9(
    frames: list[ClipFrame], baseline: Outcome, opensearch_url: str, workdir: Path
) -> FaultRun:
    """kill -9 of each service in turn (detector, tracker, captioner, indexer) while it has
    work in flight, each restarted at once (the tracker with an empty data folder, so its
    state comes back from the changelog alone). The next fifth of the frames is fed while the
    service is down, so the restarted one has work waiting."""

    def body(run: FaultRun) -> None:
        with running_pipeline("kill9", opensearch_url, workdir) as (_, pipe, watch):
            procs = pipe.start_all()
            feeder = Feeder(pipe.kafka, pipe.names.name("frames"), FEED_RATE)
            fifth = len(frames) // 5
            try:
                feeder.feed(frames[:fifth])
                for n, service in enumerate(SERVICES, start=1):
                    stage = STAGE_OF[service]
                    wait_for(partial(more_than, watch, stage, 0), 180, f"{service} busy")
                    killed = time.monotonic()
                    procs[service].kill()
                    end = len(frames) if n == len(SERVICES) else (n + 1) * fifth
                    feeder.feed(frames[n * fifth : end])
                    instance = "restarted" if service == "tracker" else "1"
                    procs[service] = pipe.start(service, instance)
                    pipe.wait_ready(procs[service])
                    ready = time.monotonic()
                    took = ready - killed
                    run.notes.append(f"{service} killed, restarted, ready in {took:.0f} s")
                    wait_for(partial(output_after, watch, stage, ready), 180, f"{service} again")
                    resumed(run, f"kill -9 {service}", ready, watch, (stage,))
                feeder.wait_fed()
                finish(run, pipe, watch, baseline)
            finally:
                feeder.close()

    return timed(body, FaultRun("kill -9", frames))
