"""Re-attachment by appearance in the tracking core (issue 14 point 2): a lost track whose object
comes back where IoU no longer reaches it keeps its id when the crop looks the same, not when it
looks different; off by default; the state carries the vectors through bytes exactly."""

from __future__ import annotations

import numpy as np
import pytest

from vsa.services.tracker.core import FrameDetections, TrackerConfig, TrackerState, step
from vsa.services.tracker.core.state import MAGIC, MAGIC_V4

from .test_tracker_core import T0, box

DIMS = 8
RED = np.eye(DIMS, dtype=np.float32)[0]
BLUE = np.eye(DIMS, dtype=np.float32)[1]
ON = TrackerConfig(reattach_min_similarity=0.7)


def frame(cx: float, vector: np.ndarray | None) -> FrameDetections:
    xyxy = np.array([box(cx, 200)], float)
    vectors = None if vector is None else vector[None, :]
    return FrameDetections(xyxy, np.array([0.9]), np.array([0]), vectors)


def walk_behind_a_pillar(after: np.ndarray | None, before: np.ndarray | None = RED) -> list:
    """Walks right at 100 px/s for 2 s, hidden 0.8 s, then comes back 60 px further than its
    speed predicts (it sped up behind the pillar): IoU with the prediction is about 0.2."""
    frames = [frame(100 + 10 * i, before) for i in range(20)]
    frames += [FrameDetections.empty()] * 8
    frames += [frame(100 + 10 * i + 60, after) for i in range(28, 40)]
    return frames


def ids_per_frame(frames: list[FrameDetections], config: TrackerConfig) -> list[list[int]]:
    state, seen = TrackerState(), []
    for seq, detections in enumerate(frames):
        state, out = step(state, detections, T0 + seq / 10, seq, config)
        assert out is not None
        seen.append(out.track_ids[out.observed()].tolist())
    return seen


def test_without_appearance_the_object_comes_back_under_a_new_id() -> None:
    seen = ids_per_frame(walk_behind_a_pillar(RED), TrackerConfig())
    assert seen[10] == [1]
    assert seen[-1] == [2]


def test_a_lost_track_is_re_attached_to_the_same_looking_object() -> None:
    seen = ids_per_frame(walk_behind_a_pillar(RED), ON)
    assert seen[10] == [1]
    assert seen[28] == [1]  # back on its first frame, no tentative phase
    assert seen[-1] == [1]


def test_a_different_looking_object_is_not_given_the_lost_id() -> None:
    seen = ids_per_frame(walk_behind_a_pillar(BLUE), ON)
    assert seen[-1] == [2]


def test_the_gate_keeps_re_attachment_near_the_predicted_box() -> None:
    frames = [frame(100 + 10 * i, RED) for i in range(20)]
    frames += [FrameDetections.empty()] * 3 + [frame(700, RED)] * 5  # same look, far away
    assert ids_per_frame(frames, ON)[-1] == [2]


def test_off_by_default_vectors_change_nothing() -> None:
    assert TrackerConfig().reattach_min_similarity is None
    plain = walk_behind_a_pillar(None, None)
    with_vectors = walk_behind_a_pillar(RED)
    assert ids_per_frame(plain, TrackerConfig()) == ids_per_frame(with_vectors, TrackerConfig())


def test_the_state_keeps_the_running_appearance_through_bytes_exactly() -> None:
    state = TrackerState()
    for seq, detections in enumerate(walk_behind_a_pillar(RED)[:22]):
        state, _ = step(state, detections, T0 + seq / 10, seq, ON)
    assert state.appearance.shape == (1, DIMS)
    np.testing.assert_allclose(state.appearance[0], RED, atol=1e-6)
    data = state.to_bytes()
    assert data.startswith(MAGIC_V4)
    again = TrackerState.from_bytes(data)
    np.testing.assert_array_equal(again.appearance, state.appearance)
    assert again.to_bytes() == data
    plain, _ = step(TrackerState(), frame(100, None), T0, 0, ON)
    assert plain.appearance.shape == (1, 0)
    assert plain.to_bytes().startswith(MAGIC)  # without vectors: version 3, as before


def test_the_running_appearance_follows_new_crops_by_the_momentum() -> None:
    config = TrackerConfig(reattach_min_similarity=0.7, appearance_momentum=0.5)
    state, _ = step(TrackerState(), frame(100, RED), T0, 0, config)
    state, _ = step(state, frame(110, BLUE), T0 + 0.1, 1, config)
    expected = (RED + BLUE) / np.linalg.norm(RED + BLUE)
    np.testing.assert_allclose(state.appearance[0], expected, atol=1e-6)


@pytest.mark.parametrize("shape", [(2, DIMS), (1,)])
def test_vectors_must_be_one_row_per_box(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="appearance must be"):
        FrameDetections(np.zeros((1, 4)), np.ones(1), np.zeros(1, np.int64), np.zeros(shape))
