"""The tracker's step function: one frame of detections in, the camera's new state and tracks out.

ByteTrack's association (Zhang et al., 2022) on a batched constant-velocity Kalman filter:

1. every track is predicted to this frame's capture time (the real elapsed time, so dropped
   frames and irregular sampling are handled);
2. high-score detections are matched to all confirmed tracks, lost ones included;
3. low-score detections are matched to confirmed tracks that were seen on the previous frame
   and are still unmatched (a partly occluded object's score drops; this keeps its track);
4. remaining high-score detections are matched to tentative tracks;
5. tentative tracks without a match are dropped, confirmed ones become 'lost' and are removed
   once unseen for more than ``max_lost_s`` (checked before matching, so a long gap in the
   stream never lets an old track take a new object) or ``max_lost_frames`` frames; tentative
   tracks with ``min_hits`` matches are confirmed; unmatched detections scoring
   ``new_track_score`` or more start tentative tracks.

A track gets its id when it is confirmed, not when it starts: tentative tracks have no id and
are not in the outputs, so the ids users see (tracks, alerts, keyframes, captions) count objects
that lasted, with no gaps left by the flickering false positives that never did.

Each stage is an optimal assignment (Hungarian method) that maximises the total margin of the
pairs' IoU (score-weighted in stages 2 and 4) over the stage's threshold; pairs under it never
match, and no pair is forced in just to match more. Two refinements over ByteTrack, both knobs:
a lost track's margin is discounted (``lost_track_discount``), so a track coasting behind an
occluder does not take the occluder's detection from the occluder's own track; a detection of
another class is discounted too (``class_mismatch_discount``).

A track's class is the score-weighted majority of its matched detections' classes, kept with one
counter (the Boyer-Moore majority vote), so a detector that flickers between classes does not
flicker the track.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

from . import kalman
from .config import DEFAULT_CONFIG, TrackerConfig
from .matching import assign, iou_matrix
from .records import (
    FrameDetections,
    TrackOutputs,
)
from .state import (
    CLASS_ID,
    CLASS_VOTES,
    CONFIRMED,
    FIRST_SEQ,
    HITS,
    KALMAN,
    LAST_SEEN_TS,
    MISSES,
    N_FLOAT_COLS,
    N_INT_COLS,
    NO_ID,
    POS,
    SCORE,
    STATUS,
    TENTATIVE,
    TRACK_ID,
    VEL_XY,
    TrackerState,
    no_appearance,
)

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]

_NO_IDS: I64 = np.zeros(0, np.int64)


def xyxy_to_cxcywh(xyxy: F64) -> F64:
    """``(n, 4)`` corner boxes to centre, width, height."""
    size = xyxy[:, 2:] - xyxy[:, :2]
    return np.concatenate([xyxy[:, :2] + size * 0.5, size], axis=1)


def cxcywh_to_xyxy(cxcywh: F64) -> F64:
    """``(n, 4)`` centre, width, height boxes to corners."""
    half = cxcywh[:, 2:] * 0.5
    return np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1)


def step(
    state: TrackerState,
    detections: FrameDetections,
    capture_ts: float,
    frame_seq: int,
    config: TrackerConfig = DEFAULT_CONFIG,
) -> tuple[TrackerState, TrackOutputs | None]:
    """Apply one frame of one camera.

    Args:
        state: the camera's state after its previous frame (``TrackerState()`` for a new camera).
        detections: this frame's boxes, pixels of the original image.
        capture_ts: capture time of the frame, UNIX seconds; the Kalman prediction spans
            ``capture_ts - state.last_ts`` (0 if the clock went backwards).
        frame_seq: the frame's sequence number, monotonic per camera.
        config: tracker knobs (see :class:`TrackerConfig`).

    Returns:
        ``(new_state, outputs)``; the outputs hold the confirmed tracks (matched or lost) only.
        A frame already applied (``frame_seq <= state.last_frame_seq``,
        a redelivery) returns ``(state, None)`` unchanged, so replaying input is harmless. A
        frame that :func:`restarts_sequence` is applied to :meth:`TrackerState.restarted`
        instead: the old tracks are in its ``removed_ids``, new ones continue the id counter.
        A frame that :func:`predates_sequence` (a redelivered frame of the numbering the camera
        restarted from) returns ``(state, None)`` too.
    """
    ended = _NO_IDS
    if frame_seq <= state.last_frame_seq:
        if not restarts_sequence(state, frame_seq, capture_ts, config):
            return state, None
        ended, state = state.track_ids, state.restarted()
    elif predates_sequence(state, capture_ts, config):
        return state, None
    first_frame = state.last_frame_seq < 0
    dt = 0.0 if first_frame else max(0.0, capture_ts - state.last_ts)
    state, stale = _drop_stale(state, capture_ts, config)
    predicted = kalman.predict(state.floats[:, KALMAN], dt, state.ints[:, MISSES] > 0, config)
    track_rows, det_rows = _associate(state, cxcywh_to_xyxy(predicted[:, POS]), detections, config)
    measured = xyxy_to_cxcywh(detections.xyxy)
    floats, ints = _update_tracks(
        state, predicted, (measured, detections), (track_rows, det_rows), capture_ts, config
    )
    appearance = _track_appearance(state, detections, (track_rows, det_rows), config)
    promoted = (ints[:, STATUS] == TENTATIVE) & (ints[:, HITS] >= config.min_hits)
    ints[promoted, STATUS] = CONFIRMED
    keep = _survivors(ints, config)
    removed = ints[~keep, TRACK_ID]
    if removed.size:  # never a track confirmed now: it matched
        floats, ints, promoted = floats[keep], ints[keep], promoted[keep]
        appearance = appearance[keep]
    if stale.size or ended.size:
        removed = np.concatenate([ended, stale, removed])
    det_free = _all_true(len(detections))
    det_free[det_rows] = False
    new_dets = (det_free & (detections.scores >= config.new_track_score)).nonzero()[0]
    if new_dets.size:
        at_once = first_frame or config.min_hits <= 1
        new_floats, new_ints = _new_tracks(
            (measured, detections), new_dets, capture_ts, frame_seq, config
        )
        new_ints[:, STATUS] = CONFIRMED if at_once else TENTATIVE
        floats, ints = np.concatenate([floats, new_floats]), np.concatenate([ints, new_ints])
        promoted = np.concatenate([promoted, np.full(new_dets.size, at_once)])
        appearance = _with_new_appearance(appearance, detections, new_dets)
    floats, ints, newly, order = _number_confirmed(floats, ints, promoted, state.next_track_id)
    if order is not None and appearance.shape[1]:
        appearance = appearance[order]
    floats.flags.writeable = False  # states are immutable; outputs share their memory
    ints.flags.writeable = False
    appearance.flags.writeable = False
    start_ts = capture_ts if first_frame else state.seq_start_ts
    new_state = TrackerState(
        frame_seq, capture_ts, state.next_track_id + newly.size, floats, ints, start_ts, appearance
    )
    return new_state, _outputs(new_state, frame_seq, capture_ts, newly, removed[removed != NO_ID])


def restarts_sequence(
    state: TrackerState, frame_seq: int, capture_ts: float, config: TrackerConfig = DEFAULT_CONFIG
) -> bool:
    """Whether this frame starts the camera's frame_seq over instead of repeating an applied one.

    True when frame_seq did not grow (``frame_seq <= state.last_frame_seq``) although the frame
    was captured more than ``config.restart_after_s`` seconds after the last applied frame. A
    redelivered frame cannot look like that: it was captured no later than the frames applied
    after it. Its source numbered it anew instead: an ingest that found no earlier frame of the
    camera (its frames topic emptied by retention, a new deployment). False for a camera with no
    frame applied yet and when ``restart_after_s`` is None.
    """
    return (
        config.restart_after_s is not None
        and 0 <= frame_seq <= state.last_frame_seq
        and capture_ts - state.last_ts > config.restart_after_s
    )


def predates_sequence(
    state: TrackerState, capture_ts: float, config: TrackerConfig = DEFAULT_CONFIG
) -> bool:
    """Whether a frame was captured more than ``config.restart_after_s`` seconds before the
    frame that began the camera's current numbering (``state.seq_start_ts``).

    Such a frame belongs to the numbering the camera restarted from (a redelivery from before
    the restart): its frame_seq may well be above the new ones, but it must not be applied
    again. A frame of the current numbering is never that old unless the ingest host's clock
    stepped back past the start of the numbering. False when the start is unknown (0.0) and
    when ``restart_after_s`` is None.
    """
    return (
        config.restart_after_s is not None
        and state.seq_start_ts > 0
        and capture_ts < state.seq_start_ts - config.restart_after_s
    )


def _associate(
    state: TrackerState, predicted_xyxy: F64, detections: FrameDetections, config: TrackerConfig
) -> tuple[IntArray, IntArray]:
    """ByteTrack's three association stages; returns matched (track rows, detection rows)."""
    ints, scores = state.ints, detections.scores
    candidates = (scores >= config.low_score).nonzero()[0]
    if len(state) == 0 or candidates.size == 0:
        empty = np.zeros(0, np.intp)
        return empty, empty
    iou = iou_matrix(predicted_xyxy, detections.xyxy[candidates])
    high = scores[candidates] >= config.high_score
    confirmed = ints[:, STATUS] == CONFIRMED
    seen_last = confirmed & (ints[:, MISSES] == 0)
    weight = _weights(state, detections.class_ids[candidates], config)
    lost_weight = weight * np.where(seen_last, 1.0, 1.0 - config.lost_track_discount)[:, None]
    fused = iou * scores[candidates] if config.fuse_score else iou
    stages = (
        (confirmed, high, config.match_iou, fused, lost_weight),
        (seen_last, ~high, config.match_iou_low, iou, weight),
        (~confirmed, high, config.match_iou_tentative, fused, weight),
    )
    track_free = _all_true(len(state))
    det_free = _all_true(candidates.size)
    rows: list[IntArray] = []
    cols: list[IntArray] = []
    for number, (tracks, dets, min_iou, similarity, stage_weight) in enumerate(stages):
        if number == 2 and _reattaching(state, detections, config):
            lost = confirmed & ~seen_last & track_free
            appearance = _reattach_benefit(state, predicted_xyxy, detections, candidates, config)
            _assign_stage((lost, high & det_free, appearance), track_free, det_free, rows, cols)
        t = (tracks & track_free).nonzero()[0]
        d = (dets & det_free).nonzero()[0]
        if t.size == 0 or d.size == 0:
            continue
        r, c = assign((similarity[t][:, d] - min_iou) * stage_weight[t][:, d])
        track_free[t[r]] = False
        det_free[d[c]] = False
        rows.append(t[r])
        cols.append(d[c])
    empty = np.zeros(0, np.intp)
    return np.concatenate([empty, *rows]), candidates[np.concatenate([empty, *cols])]


def _reattaching(state: TrackerState, detections: FrameDetections, config: TrackerConfig) -> bool:
    """Whether the appearance stage runs: on in the config, vectors on both sides, same size."""
    vectors = detections.appearance
    return (
        config.reattach_min_similarity is not None
        and vectors is not None
        and state.appearance.shape[1] == vectors.shape[1] > 0
    )


def _reattach_benefit(
    state: TrackerState,
    predicted_xyxy: F64,
    detections: FrameDetections,
    candidates: IntArray,
    config: TrackerConfig,
) -> F64:
    """(tracks, candidates) margin of the appearance similarity over
    ``reattach_min_similarity`` where the detection's centre lies within ``reattach_gate``
    box heights of the track's predicted centre; -1 (never matched) elsewhere."""
    assert detections.appearance is not None
    assert config.reattach_min_similarity is not None
    similarity = state.appearance @ detections.appearance[candidates].T
    det_xyxy = detections.xyxy[candidates]
    track_c = (predicted_xyxy[:, :2] + predicted_xyxy[:, 2:]) * 0.5
    det_c = (det_xyxy[:, :2] + det_xyxy[:, 2:]) * 0.5
    distance = np.hypot(*(track_c[:, None, :] - det_c[None, :, :]).transpose(2, 0, 1))
    heights = np.maximum.outer(
        predicted_xyxy[:, 3] - predicted_xyxy[:, 1], det_xyxy[:, 3] - det_xyxy[:, 1]
    )
    near = distance <= config.reattach_gate * heights
    benefit: F64 = np.where(near, similarity - config.reattach_min_similarity, -1.0)
    return benefit


def _assign_stage(
    stage: tuple[Bools, Bools, F64],
    track_free: Bools,
    det_free: Bools,
    rows: list[IntArray],
    cols: list[IntArray],
) -> None:
    """Match the free tracks and detections a stage allows by its benefit matrix (in place)."""
    tracks, dets, benefit = stage
    t = (tracks & track_free).nonzero()[0]
    d = (dets & det_free).nonzero()[0]
    if t.size == 0 or d.size == 0:
        return
    r, c = assign(benefit[t][:, d])
    track_free[t[r]] = False
    det_free[d[c]] = False
    rows.append(t[r])
    cols.append(d[c])


def _all_true(size: int) -> Bools:
    """A fresh boolean mask of ``size`` True values (np.ones costs a Python-level call)."""
    mask = np.empty(size, bool)
    mask.fill(True)
    return mask


def _weights(state: TrackerState, class_ids: I64, config: TrackerConfig) -> F64:
    """(n, m) factor on each pair's margin: 1, or 1 - class_mismatch_discount across classes."""
    mismatch = state.ints[:, CLASS_ID][:, None] != class_ids
    weight: F64 = 1.0 - config.class_mismatch_discount * mismatch
    return weight


def _update_tracks(
    state: TrackerState,
    predicted: F64,
    frame: tuple[F64, FrameDetections],
    matches: tuple[IntArray, IntArray],
    capture_ts: float,
    config: TrackerConfig,
) -> tuple[F64, I64]:
    """New float and int rows of the existing tracks: matched ones corrected, others coasting.

    ``frame`` is this frame's boxes as (n, 4) cx, cy, w, h and its detections.
    """
    t, d = matches
    measured, detections = frame
    floats = np.concatenate([predicted, state.floats[:, LAST_SEEN_TS:]], axis=1)
    ints = state.ints.copy()
    ints[:, MISSES] += 1
    if t.size == 0:
        return floats, ints
    floats[t, KALMAN] = kalman.update(predicted[t], measured[d], config)
    floats[t, LAST_SEEN_TS] = capture_ts
    floats[t, SCORE] = detections.scores[d]
    ints[t, MISSES] = 0
    ints[t, HITS] += 1
    _vote_class(floats, ints, t, detections.class_ids[d], detections.scores[d])
    return floats, ints


def _vote_class(floats: F64, ints: I64, rows: IntArray, class_ids: I64, scores: F64) -> None:
    """Score-weighted Boyer-Moore majority vote: the class with most of the weight wins."""
    same = ints[rows, CLASS_ID] == class_ids
    if same.all():  # the common case: nothing can flip
        floats[rows, CLASS_VOTES] += scores
        return
    votes = floats[rows, CLASS_VOTES] + np.where(same, scores, -scores)
    flip = votes < 0
    ints[rows, CLASS_ID] = np.where(flip, class_ids, ints[rows, CLASS_ID])
    floats[rows, CLASS_VOTES] = np.abs(votes)


def _drop_stale(
    state: TrackerState, capture_ts: float, config: TrackerConfig
) -> tuple[TrackerState, I64]:
    """Remove tracks unseen for more than ``max_lost_s`` at this frame's time, before matching.

    Doing this first means that after a long gap in the stream (a camera offline for minutes)
    no track from before the gap can take the detection of an object seen after it.
    """
    stale = capture_ts - state.floats[:, LAST_SEEN_TS] > config.max_lost_s
    if not stale.any():
        return state, _NO_IDS
    keep = ~stale
    fresh = dataclasses.replace(
        state,
        floats=state.floats[keep],
        ints=state.ints[keep],
        appearance=state.appearance[keep],
    )
    return fresh, state.ints[stale, TRACK_ID]


def _survivors(ints: I64, config: TrackerConfig) -> Bools:
    """Rows to keep after matching: unmatched tentative tracks go, and with max_lost_frames
    set, tracks lost for more frames than that."""
    missed = ints[:, MISSES] > 0
    drop = ints[:, STATUS] == TENTATIVE
    if config.max_lost_frames is not None:
        drop |= ints[:, MISSES] > config.max_lost_frames
    keep: Bools = ~(missed & drop)
    return keep


def _new_tracks(
    frame: tuple[F64, FrameDetections],
    rows: IntArray,
    capture_ts: float,
    frame_seq: int,
    config: TrackerConfig,
) -> tuple[F64, I64]:
    """Rows of tracks started from unmatched detections, without ids (see _number_confirmed)."""
    measured, detections = frame
    floats = np.empty((rows.size, N_FLOAT_COLS), np.float64)
    floats[:, KALMAN] = kalman.initiate(measured[rows], config)
    floats[:, LAST_SEEN_TS] = capture_ts
    floats[:, SCORE] = detections.scores[rows]
    floats[:, CLASS_VOTES] = detections.scores[rows]
    ints = np.zeros((rows.size, N_INT_COLS), np.int64)  # TRACK_ID: NO_ID
    ints[:, FIRST_SEQ] = frame_seq
    ints[:, HITS] = 1
    ints[:, CLASS_ID] = detections.class_ids[rows]
    return floats, ints


def _number_confirmed(
    floats: F64, ints: I64, promoted: Bools, next_id: int
) -> tuple[F64, I64, I64, IntArray | None]:
    """Give the tracks confirmed on this frame (``promoted`` rows) the next ids, in row order,
    and move them after the other confirmed tracks, before the tentative ones: the rows stay
    sorted by id. Returns the rows, the new ids and the new row order (None: unchanged)."""
    count = int(np.count_nonzero(promoted))
    if count == 0:
        return floats, ints, _NO_IDS, None
    newly = np.arange(next_id, next_id + count, dtype=np.int64)
    ints[promoted, TRACK_ID] = newly
    order = np.argsort(ints[:, STATUS] == TENTATIVE, kind="stable")
    return floats[order], ints[order], newly, order


def _track_appearance(
    state: TrackerState,
    detections: FrameDetections,
    matches: tuple[IntArray, IntArray],
    config: TrackerConfig,
) -> F32:
    """The tracks' running appearance after this frame's matches: for each matched track with
    a high-score detection, ``momentum · old + (1 - momentum) · crop``, renormalised (the crop
    alone for a track without one yet). A camera's first vectors widen the (n, 0) matrix."""
    vectors = detections.appearance
    current = state.appearance
    if vectors is None:
        return current
    if current.shape[1] != vectors.shape[1]:  # first vectors, or another embedder: start over
        current = np.zeros((len(state), vectors.shape[1]), np.float32)
    t, d = matches
    confident = detections.scores[d] >= config.high_score
    t, d = t[confident], d[confident]
    if t.size == 0:
        return current
    updated = current.copy()
    old = current[t]
    fresh = ~old.any(axis=1)
    mixed = config.appearance_momentum * old + (1 - config.appearance_momentum) * vectors[d]
    mixed[fresh] = vectors[d][fresh]
    norms = np.linalg.norm(mixed, axis=1, keepdims=True)
    updated[t] = mixed / np.maximum(norms, 1e-12)
    return updated


def _with_new_appearance(appearance: F32, detections: FrameDetections, rows: IntArray) -> F32:
    """``appearance`` with the rows of tracks started from detections ``rows`` appended."""
    if appearance.shape[1] == 0:
        return no_appearance(len(appearance) + rows.size)
    vectors = detections.appearance
    if vectors is None or vectors.shape[1] != appearance.shape[1]:
        added = np.zeros((rows.size, appearance.shape[1]), np.float32)
    else:
        added = vectors[rows]
    return np.concatenate([appearance, added])


def _outputs(
    state: TrackerState, frame_seq: int, capture_ts: float, newly: I64, removed: I64
) -> TrackOutputs:
    """The columnar view of every live confirmed track after this frame (tentative tracks
    have no id yet and are left out; they are the last rows)."""
    confirmed = int(np.count_nonzero(state.ints[:, STATUS] == CONFIRMED))
    f, i = state.floats[:confirmed], state.ints[:confirmed]
    velocity = f[:, VEL_XY]
    # confirmed 1, lost 2 (STATUS_* codes): a confirmed track with misses is lost
    status = (1 + (i[:, MISSES] > 0)).astype(np.uint8)
    return TrackOutputs(
        frame_seq=frame_seq,
        capture_ts=capture_ts,
        track_ids=i[:, TRACK_ID],
        xyxy=cxcywh_to_xyxy(f[:, POS]),
        class_ids=i[:, CLASS_ID],
        scores=f[:, SCORE],
        velocity_px_s=velocity,
        direction_deg=np.degrees(np.arctan2(velocity[:, 1], velocity[:, 0])),
        age_frames=frame_seq - i[:, FIRST_SEQ],
        status=status,
        new_confirmed_ids=newly,
        removed_ids=removed,
    )
