"""Alert rules of the tracker (pure): the engine that runs the rule kinds of
``vsa.schemas.rules`` (zone intrusion, line crossing, loitering, crowding, ...) on each frame.

:func:`compile_rules` checks a ``CameraConfig`` against the detector's classes and prepares it;
:func:`evaluate` runs the rules on one frame of tracks with the camera's :class:`RuleState`
and returns the new state and the alerts.
"""

from vsa.schemas.rules import CompiledRule, FrameContext, TrackView
from vsa.schemas.rules.geometry import Anchor

from .compile import (
    CameraRules,
    RuleConfigError,
    compile_rules,
    load_camera_configs,
)
from .engine import RuleOutputs, evaluate, run_rules
from .state import RuleState, RuleTable

__all__ = [
    "Anchor",
    "CameraRules",
    "CompiledRule",
    "FrameContext",
    "RuleConfigError",
    "RuleOutputs",
    "RuleState",
    "RuleTable",
    "TrackView",
    "compile_rules",
    "evaluate",
    "load_camera_configs",
    "run_rules",
]
