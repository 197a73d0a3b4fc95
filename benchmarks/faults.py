"""Fault injection: how the whole pipeline recovers from Kafka faults (issue 11 point 7).

``python benchmarks/faults.py`` runs the cases of ``tests/integration/test_faults_pipeline.py``
with the same harness (``tests/integration/fault_scenarios.py``): detector, tracker, captioner
and indexer as `vsa` processes on an own single broker, fed the sample clip as two cameras with
the example rules, the indexer writing to the local OpenSearch (``OPENSEARCH_URL``, default the
devstack's). First an undisturbed run of the same frames, the baseline every fault is compared
with; then each fault, with a table per fault:

- resumed: seconds from the end of the fault (broker healthy again; SIGCONT; the restarted
  process ready) to the first new output of each stage (goal: at most 10 s);
- lost: items the run did not write that it should have (frames without detections or tracks,
  keyframes of the undisturbed run, alert_ids of the undisturbed run, captions of the run's
  keyframes, caption documents in the index); goal 0;
- duplicates: messages written again for a frame (or an alert_id) already written, per topic
  (at-least-once: reported, not a failure);
- alert_ids differing from the undisturbed run (missing, extra, or written with two contents);
  goal 0.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.fault_scenarios import (  # noqa: E402
    STAGES,
    FaultRun,
    broker_outage,
    kill9,
    undisturbed,
    zombie,
)
from tests.integration.pipeline_harness import (  # noqa: E402
    ClipFrame,
    Outcome,
    alert_differences,
    clip_frames,
)
from vsa.assets import fetch_vtest  # noqa: E402
from vsa.runtime.settings import DEFAULT_OPENSEARCH_URL  # noqa: E402

Case = Callable[[list[ClipFrame], Outcome, str, Path], FaultRun]
CASES: dict[str, Case] = {
    # the outage alone: one instance of each service
    "outage": lambda f, b, u, w: broker_outage(f, b, u, w, second_instances=False),
    # the test's case: second instances SIGTERMed in the outage, one vsa ingest publishing a
    # live camera through it
    "outage-sigterm": lambda f, b, u, w: broker_outage(f, b, u, w, live_clip=fetch_vtest()),
    "zombie": zombie,
    "kill9": kill9,
}


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def fault_table(run: FaultRun, baseline: Outcome) -> list[str]:
    """One table of a run: a row per fault and stage."""
    assert run.outcome is not None
    lost = run.missing(baseline)
    dups = run.duplicates()
    rows = [
        "| fault | stage | resumed s | caught up s | lost | duplicates |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    topic_of = {"index": "captions"}
    for fault, stages in run.resumed.items():
        for stage in STAGES:
            if stage not in stages:
                continue
            topic = topic_of.get(stage, stage)
            rows.append(
                f"| {fault} | {stage} | {fmt(stages[stage])} | {fmt(run.caught_up.get(fault))} "
                f"| {lost[stage]} | {dups[topic] if stage != 'index' else '-'} |"
            )
    rows.append("")
    rows.append(
        f"lost elsewhere: keyframes {lost['keyframes']}, alerts {lost['alerts']}; duplicates: "
        f"alerts {dups['alerts']}, keyframes {dups['keyframes']}; alert_ids differing from the "
        f"undisturbed run: {len(alert_differences(run.outcome, baseline))}; "
        f"problems: {run.problems or 'none'}"
    )
    for fault, cameras in run.failover.items():
        taken = ", ".join(f"{c} {fmt(s)} s" for c, s in cameras.items())
        rows.append(f"{fault}: first output of each camera after the stop: {taken}")
    rows.extend(f"note: {note}" for note in run.notes)
    stops = ", ".join(f"{n} {code} in {s:.1f} s" for n, (code, s) in run.stops.items())
    rows.append(f"SIGTERM exits: {stops}; run took {run.seconds:.0f} s")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faults", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--per-camera", type=int, default=150, help="frames per camera")
    parser.add_argument("--workdir", type=Path, default=None, help="logs and broker data")
    args = parser.parse_args()
    opensearch_url = os.environ.get("OPENSEARCH_URL", DEFAULT_OPENSEARCH_URL)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="vsa-faults-"))
    frames = clip_frames(fetch_vtest(), args.per_camera, base_ts=float(int(time.time())))
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"{len(frames)} frames; logs in {workdir}",
        flush=True,
    )
    base = undisturbed(frames, opensearch_url, workdir / "undisturbed")
    assert base.outcome is not None
    counts = {t: len(v) for t, v in base.outcome.outputs.items()}
    print(
        f"\nundisturbed (baseline): {counts}, {len(base.outcome.indexed)} indexed, "
        f"duplicates {base.duplicates()}, took {base.seconds:.0f} s",
        flush=True,
    )
    for name in args.faults:
        run = CASES[name](frames, base.outcome, opensearch_url, workdir / name)
        print(f"\n### {run.name} ({name})\n")
        print("\n".join(fault_table(run, base.outcome)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
