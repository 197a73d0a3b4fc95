"""Alert rules of the tracker (pure): zone intrusion, line crossing, loitering, crowding.

:func:`compile_rules` checks a ``CameraConfig`` against the detector's classes and prepares it;
:func:`evaluate` runs the rules on one frame of tracks with the camera's :class:`RuleState`
and returns the new state and the alerts.
"""

from .compile import (
    CameraRules,
    CompiledRule,
    RuleConfigError,
    compile_rules,
    load_camera_configs,
)
from .engine import FrameContext, TrackView, evaluate
from .geometry import Anchor
from .state import RuleState, RuleTable

__all__ = [
    "Anchor",
    "CameraRules",
    "CompiledRule",
    "FrameContext",
    "RuleConfigError",
    "RuleState",
    "RuleTable",
    "TrackView",
    "compile_rules",
    "evaluate",
    "load_camera_configs",
]
