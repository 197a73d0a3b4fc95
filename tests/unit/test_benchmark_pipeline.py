"""The pure parts of benchmarks/pipeline.py (latency percentiles, lag growth, the bound rule,
variant flags, the --pace max throttle) and of vsa/devstack/usage.py (/proc/<pid>/stat and
nvidia-smi pmon parsing). No brokers."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.unit.bench_loader import load_benchmark
from vsa.devstack import usage

bp = load_benchmark("pipeline")


@pytest.mark.parametrize("q", [0, 10, 50, 90, 99, 100])
def test_percentile_matches_numpy(q: float) -> None:
    values = [0.31, 0.05, 1.9, 0.4, 0.4, 2.5, 0.12, 0.77, 0.2]
    assert bp.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_of_one_and_none() -> None:
    assert bp.percentile([0.25], 99) == 0.25
    assert bp.percentile([], 50) is None


def test_slope_of_a_line_and_of_a_sawtooth() -> None:
    assert bp.slope([(0, 5), (1, 7), (2, 9), (3, 11)]) == pytest.approx(2.0)
    # periodic commits: the lag jumps up and falls back, it does not grow
    saw = [(t, 100 if t % 3 == 2 else 10) for t in range(30)]
    assert abs(bp.slope(saw)) < 1.0
    assert bp.slope([(1, 3)]) == 0.0
    assert bp.slope([(1, 3), (1, 9)]) == 0.0


def stage(name: str, rate: float, lag_slope: float = 0.0, lag_mean: float = 0.0) -> object:
    return bp.StageLoad(name, rate, lag_slope, lag_mean, 0.5)


def test_the_first_stage_whose_lag_grows_is_the_bound() -> None:
    stages = [
        stage("ingest", 50.0),
        stage("detector", 43.0, lag_slope=7.0, lag_mean=200),
        stage("tracker", 43.0, lag_slope=3.0),  # also grows, but later in the pipeline
        stage("captioner", 5.0),
        stage("indexer", 1.0),
    ]
    assert bp.find_bound(stages, 50.0, held=None).startswith("detector:")


def test_lag_growth_within_noise_is_not_a_bound() -> None:
    # 1.5 msg/s is below 5 % of 40 msg/s: a tracker committing every 2.8 s looks like that
    stages = [stage("ingest", 40.0), stage("detector", 40.0), stage("tracker", 40.0, 1.5, 60)]
    assert bp.find_bound(stages, 40.0, held=None).startswith("none:")


def test_ingest_below_the_offered_rate_is_the_bound() -> None:
    stages = [stage("ingest", 31.0), stage("detector", 31.0), stage("tracker", 31.0)]
    assert bp.find_bound(stages, 40.0, held=None).startswith("ingest:")


def test_throttled_run_names_the_stage_the_frames_wait_for() -> None:
    # --pace max: the in-flight window keeps every lag flat; 180 frames wait in front of the
    # tracker (4.5 s of its 40 msg/s), 8 in front of the detector (0.2 s)
    stages = [
        stage("ingest", 40.0),
        stage("detector", 40.0, lag_mean=8),
        stage("tracker", 40.0, lag_mean=180),
        stage("captioner", 3.0),
        stage("indexer", 1.0),
    ]
    assert bp.find_bound(stages, None, held=0.8).startswith("tracker:")
    # 2.9 s waiting in front of the detector, ingest held 82 % of the window: the detector
    two = [stage("ingest", 57.6), stage("detector", 59.9, lag_mean=172), stage("tracker", 59.4)]
    assert bp.find_bound(two, None, held=0.82).startswith("detector:")
    # ingest hardly ever held: the pipeline took what ingest could write
    quiet = [stage("ingest", 40.0), stage("detector", 40.0, lag_mean=8)]
    assert bp.find_bound(quiet, None, held=0.02).startswith("ingest:")


def test_cpu_ticks_from_a_stat_line_with_a_strange_command() -> None:
    line = "4242 (py (thon) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 731 69 0 0 20 0 9 0 5 0"
    assert usage.cpu_ticks(line) == 731 + 69


def test_parse_pmon_by_its_header() -> None:
    text = (
        "# gpu         pid   type     sm    mem    enc    dec    jpg    ofa    command \n"
        "# Idx           #    C/G      %      %      %      %      %      %    name \n"
        "    0       1201     C     45     12      -      -      -      -    python \n"
        "    0       1202     C      -      -      -      -      -      -    python \n"
        "    0          -     -      -      -      -      -      -      -    -      \n"
    )
    assert usage.parse_pmon(text) == {1201: 45.0, 1202: 0.0}


def test_variant_flags() -> None:
    variant = bp.Variant.parse('fast:VSA_DETECTOR_BACKEND={"type": "onnxruntime", "a": 1};X=2')
    assert variant.name == "fast"
    assert variant.env == {"VSA_DETECTOR_BACKEND": '{"type": "onnxruntime", "a": 1}', "X": "2"}
    assert bp.Variant.parse("plain").env == {}
    with pytest.raises(SystemExit):
        bp.Variant.parse("bad:NOEQUALS")


def test_variant_instances() -> None:
    variant = bp.Variant.parse("two:@detector=2;VSA_DETECTOR_MAX_BATCH=4")
    assert variant.instances == {"detector": 2}
    assert variant.env == {"VSA_DETECTOR_MAX_BATCH": "4"}
    for bad in ("x:@detector=0", "x:@camera=2", "x:@tracker=two"):
        with pytest.raises(SystemExit):
            bp.Variant.parse(bad)


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_throttle_holds_ingest_above_the_window_and_lets_it_go_below_half() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        throttle = bp.Throttle(proc.pid, inflight=100)
        throttle.update(100)  # at the window: goes on
        time.sleep(0.1)
        assert _state(proc.pid) == "S"
        throttle.update(101)
        time.sleep(0.1)
        assert _state(proc.pid) == "T"
        throttle.update(60)  # above half: still held
        time.sleep(0.1)
        assert _state(proc.pid) == "T"
        throttle.update(49)
        time.sleep(0.1)
        assert _state(proc.pid) == "S"
        assert throttle.held_s >= 0.2
    finally:
        proc.kill()
        proc.wait()
