"""The tracking core from literal arrays: association, life cycle, time, classes, bounded state."""

from __future__ import annotations

import numpy as np
import pytest

from vsa.services.tracker.core import (
    STATUS_CONFIRMED,
    STATUS_LOST,
    STATUS_TENTATIVE,
    FrameDetections,
    TrackerConfig,
    TrackerState,
    TrackOutputs,
    predates_sequence,
    restarts_sequence,
    step,
)
from vsa.services.tracker.core.matching import assign, iou_matrix

T0 = 1_767_225_600.0


def dets(
    boxes: list[tuple[float, float, float, float]],
    scores: float | list[float] = 0.9,
    classes: int | list[int] = 0,
) -> FrameDetections:
    n = len(boxes)
    s = [scores] * n if isinstance(scores, float) else scores
    c = [classes] * n if isinstance(classes, int) else classes
    return FrameDetections(np.array(boxes, float).reshape(-1, 4), np.array(s, float), np.array(c))


def box(cx: float, cy: float, w: float = 40, h: float = 100) -> tuple[float, float, float, float]:
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def run(
    frames: list[FrameDetections],
    fps: float = 10.0,
    config: TrackerConfig | None = None,
    state: TrackerState | None = None,
    first_seq: int = 0,
) -> tuple[TrackerState, list[TrackOutputs]]:
    state = state or TrackerState()
    outs = []
    for i, frame in enumerate(frames):
        seq = first_seq + i
        state, out = step(state, frame, T0 + seq / fps, seq, config or TrackerConfig())
        assert out is not None
        outs.append(out)
    return state, outs


def ids_of(out: TrackOutputs, status: int | None = None) -> list[int]:
    mask = np.ones(len(out), bool) if status is None else out.status == status
    return out.track_ids[mask].tolist()


def test_one_object_keeps_its_id_and_gets_velocity_in_px_per_second() -> None:
    # 5 px per frame at 10 fps = 50 px/s to the right
    _, outs = run([dets([box(100 + 5 * k, 200)]) for k in range(30)])
    assert all(ids_of(o) == [1] for o in outs)
    vx, vy = outs[-1].velocity_px_s[0]
    assert vx == pytest.approx(50, abs=2)
    assert vy == pytest.approx(0, abs=1)
    assert outs[-1].direction_deg[0] == pytest.approx(0, abs=2)
    assert outs[-1].age_frames[0] == 29


def test_velocity_is_per_second_whatever_the_frame_rate() -> None:
    # the same 50 px/s motion sampled at 5 fps (10 px per frame)
    _, outs = run([dets([box(100 + 10 * k, 200)]) for k in range(20)], fps=5.0)
    assert outs[-1].velocity_px_s[0, 0] == pytest.approx(50, abs=2)


def test_prediction_spans_the_real_elapsed_time_of_a_gap() -> None:
    # 300 px/s; the camera then delivers nothing for 0.6 s (frame_seq jumps 10 -> 16): the
    # object moved 180 px, far more than its 100 px width, and must keep its id.
    config = TrackerConfig()
    state, _ = run([dets([box(100 + 30 * k, 200, w=100)]) for k in range(11)], config=config)
    x_after_gap = 100 + 30 * 10 + 300 * 0.6
    state, out = step(state, dets([box(x_after_gap, 200, w=100)]), T0 + 1.6, 16, config)
    assert out is not None
    assert ids_of(out, STATUS_CONFIRMED) == [1]
    assert out.age_frames[0] == 16


def test_without_elapsed_time_the_same_gap_would_lose_the_track() -> None:
    # control for the test above: if capture_ts said no time passed, the box would be far
    # from the prediction and a new track would start
    config = TrackerConfig()
    state, _ = run([dets([box(100 + 30 * k, 200, w=100)]) for k in range(11)], config=config)
    state, out = step(state, dets([box(580, 200, w=100)]), T0 + 1.0 + 1e-3, 16, config)
    assert out is not None
    assert 1 not in ids_of(out, STATUS_CONFIRMED)


def test_after_a_long_outage_old_tracks_never_take_new_objects() -> None:
    # the camera is offline for 10 s; a new object then stands exactly where track 1 was
    state, _ = run([dets([box(100, 200)]) for _ in range(5)])
    state, out = step(state, dets([box(100, 200)]), T0 + 10.4, 5)
    assert out is not None
    assert out.removed_ids.tolist() == [1]
    assert ids_of(out) == []  # a new, tentative track: no id yet
    state, out = step(state, dets([box(100, 200)]), T0 + 10.5, 6)
    assert out is not None
    assert ids_of(out) == [2]


def test_a_frame_already_applied_is_ignored() -> None:
    state, _ = run([dets([box(100, 200)]) for _ in range(3)])
    for seq in (0, 2):
        again, out = step(state, dets([box(300, 300)]), T0 + 5, seq)
        assert out is None
        assert again is state


def test_a_restarted_frame_seq_starts_the_camera_over_and_ids_go_on() -> None:
    """Ingest found no earlier frame of the camera (its frames expired) and numbered it from 0
    again, an hour later: the frames are tracked, not skipped as redeliveries forever."""
    state, _ = run([dets([box(100, 200), box(400, 200)]) for _ in range(10)])
    later = T0 + 3600
    new, out = step(state, dets([box(100, 200)]), later, 0)
    assert out is not None
    assert (new.last_frame_seq, new.last_ts) == (0, later)
    assert out.removed_ids.tolist() == [1, 2]
    assert ids_of(out, STATUS_CONFIRMED) == [3]  # ids are never given twice
    assert new.seq_start_ts == later
    # redeliveries are still skipped: the restarted frame itself, and frames from before the
    # restart, whether their frame_seq is below the new one or above it
    for seq, ts in ((0, later), (5, T0 + 0.5), (9, T0 + 0.9)):
        again, skipped = step(new, dets([box(300, 300)]), ts, seq)
        assert skipped is None
        assert again is new
    new, out = step(new, dets([box(102, 200)]), later + 0.1, 1)
    assert out is not None
    assert ids_of(out) == [3]


@pytest.mark.parametrize(
    ("seq", "after_s", "restart_after_s", "restarts"),
    [
        (9, 3600.0, 10.0, True),  # the last frame_seq again, captured an hour later
        (0, 10.5, 10.0, True),
        (0, 10.0, 10.0, False),  # not more than restart_after_s later
        (3, -0.6, 10.0, False),  # a genuine redelivery: captured before the last frame
        (0, 3600.0, None, False),  # restarts turned off
        (10, 3600.0, 10.0, False),  # frame_seq grew: an ordinary frame after a gap
    ],
)
def test_which_frames_restart_the_sequence(
    seq: int, after_s: float, restart_after_s: float | None, restarts: bool
) -> None:
    state, _ = run([dets([box(100, 200)]) for _ in range(10)])  # frames 0..9
    config = TrackerConfig(restart_after_s=restart_after_s)
    assert restarts_sequence(state, seq, state.last_ts + after_s, config) is restarts
    assert not restarts_sequence(TrackerState(), 0, T0 + 3600, config)  # nothing applied yet


@pytest.mark.parametrize(
    ("before_s", "restart_after_s", "predates"),
    [
        (10.5, 10.0, True),  # captured before the numbering began: from before a restart
        (10.0, 10.0, False),
        (-5.0, 10.0, False),
        (3600.0, None, False),  # restarts (and this check) turned off
    ],
)
def test_which_frames_predate_the_current_numbering(
    before_s: float, restart_after_s: float | None, predates: bool
) -> None:
    state, _ = run([dets([box(100, 200)]) for _ in range(10)])  # frames 0..9
    assert state.seq_start_ts == T0
    config = TrackerConfig(restart_after_s=restart_after_s)
    assert predates_sequence(state, T0 - before_s, config) is predates
    unknown = TrackerState(last_frame_seq=9, last_ts=T0 + 0.9)  # read from a version-1 state
    assert not predates_sequence(unknown, T0 - before_s, config)


def test_tracks_are_confirmed_after_min_hits_and_tentative_misses_remove_them() -> None:
    config = TrackerConfig(min_hits=3)
    frames = [dets([box(100, 200)])] + [dets([box(100, 200), box(400, 200)])] * 3
    state, outs = run(frames, config=config)
    assert ids_of(outs[0], STATUS_CONFIRMED) == [1]  # the camera's first frame confirms at once
    assert ids_of(outs[1]) == [1]  # the second object is tentative: no id, not in the outputs
    assert ids_of(outs[2]) == [1]
    assert ids_of(outs[3], STATUS_CONFIRMED) == [1, 2]
    assert outs[3].new_confirmed_ids.tolist() == [2]
    assert STATUS_TENTATIVE not in np.concatenate([o.status for o in outs])
    assert state.next_track_id == 3
    # a tentative track that misses once is gone, and it never took an id
    state, outs = run(
        [dets([box(100, 200)]), dets([box(100, 200), box(400, 200)]), dets([box(100, 200)])],
        config=config,
    )
    assert outs[2].removed_ids.tolist() == []
    assert ids_of(outs[2]) == [1]
    assert state.next_track_id == 2


def test_ids_count_confirmed_tracks_only_however_many_tentative_ones_came_and_went() -> None:
    """Flickering false positives start tentative tracks that never last: they take no id, so
    the next object that stays gets the next id after the last confirmed one."""
    frames = [dets([box(100, 200)])]
    for k in range(1, 9):  # a new one-frame false box on every frame, somewhere else
        frames.append(dets([box(100, 200), box(300 + 37 * k, 100 + 23 * k, 20, 20)]))
    frames += [dets([box(100, 200), box(600, 400)])] * 3  # then a real second object
    state, outs = run(frames)
    assert [ids_of(o) for o in outs[:10]] == [[1]] * 10
    assert [o.new_confirmed_ids.tolist() for o in outs[9:]] == [[], [2], []]
    assert ids_of(outs[-1], STATUS_CONFIRMED) == [1, 2]
    assert all(o.removed_ids.size == 0 for o in outs)
    assert state.track_ids.tolist() == [1, 2]


def test_tracks_confirmed_on_one_frame_are_numbered_in_order_and_rows_stay_sorted() -> None:
    config = TrackerConfig(min_hits=2)
    first = [dets([box(100, 200)])]
    pairs = [dets([box(100, 200), box(300, 200), box(500, 200)])] * 2
    state, outs = run(first + pairs + [dets([box(100, 200), box(500, 200)])], config=config)
    assert outs[2].new_confirmed_ids.tolist() == [2, 3]
    assert ids_of(outs[2]) == [1, 2, 3]
    assert ids_of(outs[3], STATUS_LOST) == [2]
    assert np.all(np.diff(state.track_ids) > 0)


def test_lost_tracks_coast_then_are_removed_after_the_buffer() -> None:
    config = TrackerConfig(max_lost_s=0.45)
    frames = [dets([box(100 + 5 * k, 200)]) for k in range(10)] + [FrameDetections.empty()] * 8
    _, outs = run(frames, config=config)
    lost = outs[10]
    assert ids_of(lost, STATUS_LOST) == [1]
    assert lost.xyxy[0, 0] > outs[9].xyxy[0, 0]  # the prediction keeps moving
    assert ids_of(outs[13], STATUS_LOST) == [1]  # 0.4 s after the last match: still there
    assert outs[14].removed_ids.tolist() == [1]
    assert len(outs[14]) == 0


def test_max_lost_frames_also_limits_the_buffer() -> None:
    config = TrackerConfig(max_lost_s=100, max_lost_frames=2)
    frames = [dets([box(100, 200)])] * 3 + [FrameDetections.empty()] * 3
    _, outs = run(frames, config=config)
    assert ids_of(outs[4], STATUS_LOST) == [1]
    assert outs[5].removed_ids.tolist() == [1]


def test_a_lost_track_is_found_again_with_its_id() -> None:
    frames = [dets([box(100 + 5 * k, 200)]) for k in range(10)]
    frames += [FrameDetections.empty()] * 3 + [dets([box(100 + 5 * k, 200)]) for k in range(13, 16)]
    _, outs = run(frames)
    assert ids_of(outs[-1], STATUS_CONFIRMED) == [1]


def test_low_score_detections_extend_tracks_but_never_start_them() -> None:
    config = TrackerConfig(high_score=0.5, low_score=0.1, new_track_score=0.6)
    frames = [dets([box(100 + 5 * k, 200)], 0.9) for k in range(5)]
    frames += [dets([box(100 + 5 * k, 200), box(500, 100)], 0.3) for k in range(5, 10)]
    _, outs = run(frames, config=config)
    assert ids_of(outs[-1], STATUS_CONFIRMED) == [1]  # kept alive by 0.3 boxes, no new tracks
    assert outs[-1].scores[0] == pytest.approx(0.3)


def test_low_score_detections_do_not_revive_a_lost_track() -> None:
    config = TrackerConfig(high_score=0.5, low_score=0.1)
    frames = [dets([box(100, 200)], 0.9)] * 3 + [
        FrameDetections.empty(),
        dets([box(100, 200)], 0.3),
    ]
    _, outs = run(frames, config=config)
    assert ids_of(outs[-1], STATUS_LOST) == [1]


def test_detections_below_low_score_are_ignored() -> None:
    _, outs = run([dets([box(100, 200)], 0.05)] * 3)
    assert len(outs[-1]) == 0


def test_class_is_the_majority_and_a_flicker_does_not_change_it() -> None:
    classes = [2, 2, 2, 7, 2, 2, 7, 2, 2, 2]  # car, with a 'truck' now and then
    _, outs = run([dets([box(100 + 3 * k, 200)], 0.8, c) for k, c in enumerate(classes)])
    assert [o.class_ids[0] for o in outs] == [2] * 10
    # a sustained change wins in the end
    _, outs = run([dets([box(100, 200)], 0.8, 2)] * 3 + [dets([box(100, 200)], 0.8, 7)] * 5)
    assert outs[-1].class_ids[0] == 7
    assert ids_of(outs[-1]) == [1]


def test_same_class_detection_wins_an_ambiguous_match() -> None:
    # a person track; two detections overlap its prediction equally: a person and a bicycle
    state, _ = run([dets([box(200, 200)], 0.9, 0)] * 3)
    left, right = box(196, 200), box(204, 200)
    state, out = step(state, dets([left, right], 0.9, [1, 0]), T0 + 0.3, 3)
    assert out is not None
    confirmed = out.status == STATUS_CONFIRMED
    assert out.xyxy[confirmed][0, 0] > 200 - 20  # followed the right (person) box


def test_crossing_objects_keep_their_ids() -> None:
    # two people walk towards each other and pass with partial overlap
    frames = [dets([box(100 + 10 * k, 200), box(400 - 10 * k, 210)]) for k in range(31)]
    _, outs = run(frames)
    first, last = outs[0], outs[-1]
    assert first.xyxy[0, 0] < first.xyxy[1, 0]
    left_to_right = last.track_ids[np.argmax(last.xyxy[:, 0])]
    assert left_to_right == 1


def test_every_camera_has_its_own_id_counter() -> None:
    a, outs_a = run([dets([box(100, 200), box(300, 200)])] * 2)
    b, outs_b = run([dets([box(100, 200)])] * 2)
    assert ids_of(outs_a[-1]) == [1, 2]
    assert ids_of(outs_b[-1]) == [1]
    assert a.next_track_id == 3
    assert b.next_track_id == 2


def test_state_stays_small_over_a_long_run_with_churn() -> None:
    rng = np.random.default_rng(1)
    config = TrackerConfig(max_lost_s=1.0)
    state = TrackerState()
    sizes = []
    for seq in range(3000):
        # five objects live for 50 frames, then leave for good; five new ones appear in the
        # other half of the image (generations alternate between two bands)
        generation, age = divmod(seq, 50)
        y0 = 100 + 400 * (generation % 2)
        boxes = [box(50 + 100 * i + 2 * age, y0 + 60 * i) for i in range(5)]
        boxes = [b for b in boxes if rng.random() > 0.1]
        state, _ = step(state, dets(boxes), T0 + seq / 10, seq, config)
        sizes.append(len(state))
    assert state.next_track_id > 250  # ids kept growing: tracks really churned
    assert max(sizes) <= 20
    assert len(state.to_bytes()) < 20 * 232 + 100


def test_detections_are_checked_once() -> None:
    with pytest.raises(ValueError, match="shape"):
        FrameDetections(np.zeros((2, 4)), np.zeros(3), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="finite"):
        FrameDetections(np.full((1, 4), np.nan), np.ones(1), np.zeros(1, np.int64))


def test_config_refuses_low_above_high() -> None:
    with pytest.raises(ValueError, match="low_score"):
        TrackerConfig(high_score=0.2, low_score=0.5)


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], float)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], float)
    np.testing.assert_allclose(iou_matrix(a, b), [[1 / 3, 0], [0, 0]])


def test_assignment_is_optimal_not_greedy_and_never_forced() -> None:
    # greedy would take (0, 0) = 0.9 and leave row 1 with 0.1; optimal takes 0.8 + 0.7
    benefit = np.array([[0.9, 0.8], [0.7, 0.1]])
    rows, cols = assign(benefit)
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 1), (1, 0)]
    # pairs without benefit never match, even if that leaves rows unmatched
    rows, cols = assign(np.array([[0.5, 0.0], [0.0, -0.2]]))
    assert rows.tolist() == [0]
    assert cols.tolist() == [0]
    # matching fewer pairs is better when the extra pair would cost more than it brings
    rows, cols = assign(np.array([[0.6, 0.05], [0.5, 0.0]]))
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 0)]


def test_assignment_with_a_single_row_or_column_takes_the_best_positive_pair() -> None:
    rows, cols = assign(np.array([[0.1, 0.4, 0.3]]))
    assert (rows.tolist(), cols.tolist()) == ([0], [1])
    rows, cols = assign(np.array([[0.2], [0.5]]))
    assert (rows.tolist(), cols.tolist()) == ([1], [0])
    rows, cols = assign(np.array([[-0.1, 0.0]]))
    assert rows.size == 0
    assert cols.size == 0
