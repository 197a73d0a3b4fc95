"""Replay detections messages through the tracker without Kafka (used by ``vsa track`` and the
golden tests): per-camera state in a dict, outputs in the order the Faust app produces them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from vsa.schemas import Detections, JsonMessage

from .camera import CameraState, process
from .core import DEFAULT_CONFIG, TrackerConfig
from .rules import CameraRules


@dataclass
class ReplayStats:
    """What a replay did: frames applied, skipped as already applied, messages out."""

    applied: int = 0
    skipped: int = 0
    outputs: dict[str, int] = field(
        default_factory=lambda: {"tracks": 0, "alerts": 0, "counts": 0, "keyframes": 0}
    )
    cameras: set[str] = field(default_factory=set)


def rules_coverage_warnings(rule_cameras: Iterable[str], seen_cameras: Iterable[str]) -> list[str]:
    """Structured warning lines (key=value) when rules and detections do not meet.

    One line for cameras that have rules but never appeared, one for cameras that appeared
    without rules (they are tracked, but no alert can fire for them); none when both match.
    """
    ruled, seen = set(rule_cameras), set(seen_cameras)
    warnings: list[str] = []
    unseen = sorted(ruled - seen)
    unruled = sorted(seen - ruled)
    if unseen:
        warnings.append(
            f"level=warning event=rules_for_unseen_cameras cameras={','.join(unseen)} "
            f'seen={",".join(sorted(seen)) or "-"} hint="set the camera id (vsa detect '
            f"--camera-id) or the rules' camera_id\""
        )
    if unruled and ruled:
        warnings.append(
            f"level=warning event=cameras_without_rules cameras={','.join(unruled)} "
            f"rules_for={','.join(sorted(ruled))}"
        )
    return warnings


def replay(
    messages: Iterable[Detections],
    rules: Mapping[str, CameraRules],
    config: TrackerConfig = DEFAULT_CONFIG,
    *,
    through_bytes: bool = True,
    stats: ReplayStats | None = None,
) -> Iterator[tuple[str, JsonMessage]]:
    """Track every message in order and yield ``(logical topic, message)`` outputs.

    For each applied frame: its ``tracks`` message, then its ``alerts``, its ``counts`` (count
    periods the frame closed), then its ``keyframes`` message if any. ``rules`` maps camera_id
    to compiled rules (cameras not in it are tracked without rules). With ``through_bytes``
    every state is encoded and decoded between frames, exactly as the Faust table stores it,
    so a replay exercises the production path.
    """
    states: dict[str, bytes | CameraState] = {}
    stats = stats if stats is not None else ReplayStats()
    for message in messages:
        stats.cameras.add(message.camera_id)
        stored = states.get(message.camera_id)
        if stored is None:
            state = CameraState()
        else:
            state = CameraState.from_bytes(stored) if isinstance(stored, bytes) else stored
        state, outputs = process(state, message, rules.get(message.camera_id), config)
        states[message.camera_id] = state.to_bytes() if through_bytes else state
        if outputs is None:
            stats.skipped += 1
            continue
        stats.applied += 1
        produced: list[tuple[str, JsonMessage]] = [("tracks", outputs.tracks)]
        produced += [("alerts", alert) for alert in outputs.alerts]
        produced += [("counts", counts) for counts in outputs.counts]
        if outputs.keyframe is not None:
            produced.append(("keyframes", outputs.keyframe))
        for topic, value in produced:
            stats.outputs[topic] += 1
            yield topic, value
