"""Knobs of the tracking core: association thresholds, track life cycle and Kalman noise.

Units: scores are detector confidences 0..1; IoU is 0..1; times are seconds of capture time
(``capture_ts``), never frames, so a camera sampled at 5 fps and one at 30 fps behave alike and
gaps in the stream are handled by predicting over the real elapsed time. Noise levels are
fractions of the box size (width for x and w, height for y and h), so they fit small and large
objects alike.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator
from typing_extensions import Self


class TrackerConfig(BaseModel):
    """How the ByteTrack-class tracker associates detections and keeps tracks alive.

    The defaults start from ByteTrack's (converted from frames at 25-30 fps to seconds) and were
    set once, for all perturbations together, on the MOTChallenge TUD sequences
    (``benchmarks/tracker_mot.py``). The score thresholds assume the detector passes boxes down
    to ``low_score``: with a detector threshold at or above ``high_score`` the second
    (low-score) association never sees a box.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    high_score: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Detections scoring at least this take part in the first association and "
        "may start tracks. Raise it to trust only confident boxes (fewer false tracks, more "
        "misses); lower it to follow faint objects (more false tracks).",
    )
    low_score: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Detections scoring in [low_score, high_score) only extend tracks that were "
        "seen on the previous frame (ByteTrack's second association); below it they are "
        "ignored. Lower it to keep tracks through occlusion (the detector's score drops), raise "
        "it if background clutter gets attached to tracks.",
    )
    new_track_score: float = Field(
        0.4,
        ge=0,
        le=1,
        description="A detection that matched no track starts a new track only with this score "
        "or more. Raise it to cut tracks born from false positives; lower it to pick up new "
        "objects sooner.",
    )
    match_iou: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Least IoU between a track's predicted box and a high-score detection for "
        "them to match (IoU times the detection score when fuse_score is on, as in ByteTrack). "
        "Among allowed pairs the matching maximises the total margin over this value. Lower it "
        "for fast or jerky motion and low frame rates (fewer lost tracks, more identity swaps "
        "in crowds); raise it for crowded, slow scenes.",
    )
    match_iou_low: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Least IoU for the second association (low-score detections). Kept stricter "
        "than match_iou because low-score boxes are less reliable.",
    )
    match_iou_tentative: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Least IoU (score-weighted with fuse_score) for a tentative, unconfirmed "
        "track to take a high-score detection left over by the confirmed tracks. Raise it to "
        "confirm only steady objects.",
    )
    fuse_score: bool = Field(
        True,
        description="Weigh the IoU of high-score matches by the detection score (ByteTrack's "
        "fuse_score), so that of two overlapping detections the confident one wins the track "
        "and a weak detection needs a closer overlap.",
    )
    class_mismatch_discount: float = Field(
        0.3,
        ge=0,
        le=1,
        description="How much less a detection of another class than the track's is worth in "
        "matching: its margin over the IoU threshold is multiplied by (1 - this). 0: classes "
        "are ignored; about 0.3: a same-class detection wins over an equally placed other-class "
        "one, but a detector flipping between 'car' and 'truck' does not break the track; "
        "1: classes never mix.",
    )
    lost_track_discount: float = Field(
        0.3,
        ge=0,
        le=1,
        description="How much less a lost track's match is worth than a track seen on the "
        "previous frame (its margin over the IoU threshold is multiplied by 1 - this). It stops "
        "a lost track, coasting behind the object that occludes it, from taking that object's "
        "detection, while a lost track alone with its reappearing object still matches. "
        "0: ByteTrack's behaviour; raise it if identities swap at occlusions; 1: lost tracks "
        "are never picked up again (not useful).",
    )
    min_hits: int = Field(
        2,
        ge=1,
        le=100,
        description="Matched frames a new track needs to be confirmed; until then it is "
        "'tentative' and a single miss removes it. Raise it to suppress tracks from flickering "
        "false positives, lower it (1) to report objects from their first frame. Tracks created "
        "on a camera's very first frame are confirmed at once (as in ByteTrack).",
    )
    max_lost_s: float = Field(
        1.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="Seconds a confirmed track survives without a matched detection ('lost', "
        "coasting on its prediction) before it is removed. Raise it to bridge longer "
        "occlusions (more risk of re-attaching to a different object); lower it to forget "
        "departed objects sooner.",
    )
    max_lost_frames: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="Also remove a lost track after this many consecutive frames without a "
        "match, whatever the time; null: only max_lost_s applies. Useful when frames arrive "
        "irregularly and a frame budget is easier to reason about.",
    )
    reattach_min_similarity: float | None = Field(
        None,
        ge=-1,
        le=1,
        allow_inf_nan=False,
        description="Re-attachment by appearance (needs detections with appearance vectors: "
        "the detector's appearance_vectors option): a lost track "
        "that no detection overlapped takes a remaining high-score detection near its "
        "predicted box whose crop's cosine similarity to the track's running appearance is "
        "at least this. null: off (the default: on the sample clip it cut ID switches but "
        "not identity errors, BENCHMARKS.md 'tracker: appearance re-attachment'). Lower it "
        "to re-attach more (more risk of giving one object's id to a look-alike).",
    )
    reattach_gate: float = Field(
        2.0,
        gt=0,
        le=100,
        allow_inf_nan=False,
        description="How far from a lost track's predicted box centre a detection may be for "
        "re-attachment, in the larger of the two box heights. Raise it for objects that turn "
        "or stop behind an occluder; lower it in crowds of look-alikes.",
    )
    appearance_momentum: float = Field(
        0.9,
        ge=0,
        lt=1,
        description="Weight of a track's running appearance against each new matched crop "
        "(exponential average, renormalised). Higher: steadier, slower to follow a change of "
        "pose or light; 0: the last crop only.",
    )
    meas_noise: float = Field(
        0.08,
        gt=0,
        le=10,
        allow_inf_nan=False,
        description="Standard deviation of a detection's box coordinates, as a fraction of the "
        "box size. Raise it for a jittery detector (smoother, slower to follow turns); lower it "
        "to follow detections closely.",
    )
    pos_noise: float = Field(
        0.25,
        ge=0,
        le=100,
        allow_inf_nan=False,
        description="Random-walk noise of position and size, box sizes per square root of a "
        "second. Raise it when objects move erratically; lower it for smooth motion.",
    )
    accel_noise: float = Field(
        0.3,
        ge=0,
        le=1000,
        allow_inf_nan=False,
        description="Acceleration noise of the constant-velocity model, box sizes per second "
        "to the power 1.5. Raise it when objects change speed or direction often; lower it "
        "for steady motion (better prediction through occlusion).",
    )
    init_pos_noise: float = Field(
        0.1,
        gt=0,
        le=10,
        allow_inf_nan=False,
        description="Initial position uncertainty of a new track, as a fraction of its size.",
    )
    init_vel_noise: float = Field(
        1.5,
        gt=0,
        le=1000,
        allow_inf_nan=False,
        description="Initial velocity uncertainty of a new track, box sizes per second. Raise "
        "it when objects enter fast, so the first matches can pull the velocity up quickly.",
    )
    min_box_px: float = Field(
        1.0,
        gt=0,
        le=1000,
        allow_inf_nan=False,
        description="Smallest width and height (pixels) a predicted box is allowed to shrink to.",
    )
    restart_after_s: float | None = Field(
        10.0,
        gt=0,
        le=86_400,
        allow_inf_nan=False,
        description="A frame whose frame_seq is not above the camera's last applied one is a "
        "redelivery and is skipped, unless it was captured more than this many seconds after "
        "that last frame: a redelivered frame is never newer than the frames applied after it, "
        "so the camera's frame_seq restarted (a fresh ingest deployment, a frames topic emptied "
        "by retention) and the camera starts over: its tracks end, its track ids keep growing. "
        "Lower: a restarted camera loses fewer of its first frames; below the largest backward "
        "step of the ingest host's clock, a redelivery across that step could be taken for a "
        "restart. null: never (a restarted camera is skipped until its frame_seq passes the "
        "old one).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.low_score > self.high_score:
            raise ValueError(
                f"low_score ({self.low_score}) must be <= high_score ({self.high_score})"
            )
        return self


DEFAULT_CONFIG = TrackerConfig()
