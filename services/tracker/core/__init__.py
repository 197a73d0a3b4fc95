"""The pure tracking core: no Kafka, no Faust, only numpy and scipy.

``step(state, detections, capture_ts, frame_seq, config) -> (state, outputs)`` applies one frame
of one camera; :class:`TrackerState` is that camera's whole memory and encodes to bytes exactly.
"""

from .binary import StateFormatError
from .config import DEFAULT_CONFIG, TrackerConfig
from .records import (
    STATUS_CONFIRMED,
    STATUS_LOST,
    STATUS_NAMES,
    STATUS_TENTATIVE,
    FrameDetections,
    TrackOutputs,
)
from .state import TrackerState
from .step import (
    cxcywh_to_xyxy,
    predates_sequence,
    restarts_sequence,
    step,
    xyxy_to_cxcywh,
)

__all__ = [
    "DEFAULT_CONFIG",
    "STATUS_CONFIRMED",
    "STATUS_LOST",
    "STATUS_NAMES",
    "STATUS_TENTATIVE",
    "FrameDetections",
    "StateFormatError",
    "TrackOutputs",
    "TrackerConfig",
    "TrackerState",
    "cxcywh_to_xyxy",
    "predates_sequence",
    "restarts_sequence",
    "step",
    "xyxy_to_cxcywh",
]
