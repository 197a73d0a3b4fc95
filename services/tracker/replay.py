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
        default_factory=lambda: {"tracks": 0, "alerts": 0, "keyframes": 0}
    )


def replay(
    messages: Iterable[Detections],
    rules: Mapping[str, CameraRules],
    config: TrackerConfig = DEFAULT_CONFIG,
    *,
    through_bytes: bool = True,
    stats: ReplayStats | None = None,
) -> Iterator[tuple[str, JsonMessage]]:
    """Track every message in order and yield ``(logical topic, message)`` outputs.

    For each applied frame: its ``tracks`` message, then its ``alerts``, then its ``keyframes``
    message if any. ``rules`` maps camera_id to compiled rules (cameras not in it are tracked
    without rules). With ``through_bytes`` every state is encoded and decoded between frames,
    exactly as the Faust table stores it, so a replay exercises the production path.
    """
    states: dict[str, bytes | CameraState] = {}
    stats = stats if stats is not None else ReplayStats()
    for message in messages:
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
        if outputs.keyframe is not None:
            produced.append(("keyframes", outputs.keyframe))
        for topic, value in produced:
            stats.outputs[topic] += 1
            yield topic, value
