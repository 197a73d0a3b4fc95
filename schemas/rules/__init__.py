"""The rule kinds of camera configs: one module each in ``kinds/``, registered here by kind.

A kind's module holds everything about it: its config model (a rule in the camera-config
topic), its compile step, its evaluation on a frame of tracks (run by the tracker) and the words
the captioner uses for its alerts (see :mod:`.base`). :data:`RULE_KINDS` is the one table,
keyed by ``kind``: every module of ``kinds/`` with a module-level ``KIND`` is in it, so adding a
kind is adding one module (and its tests). The camera-config model's ``rules`` union
(:data:`RuleUnion`), the alerts' and counts' ``kind`` values (:data:`AlertKind`,
:data:`CountKind`), the tracker's engine and the captioner all read this table; a kind that is
not in it is an error everywhere, never a silent fallback.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, Union

from pydantic import Field

from . import kinds as _kinds_package
from .base import (
    AlertWords,
    CompiledRule,
    CountRecord,
    Evaluation,
    Firing,
    FrameContext,
    RuleConfig,
    RuleFrame,
    RuleKind,
    TrackView,
)
from .table import RuleTable


class UnknownRuleKindError(KeyError):
    """A rule or alert kind that no module of ``vsa.schemas.rules.kinds`` defines."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown rule kind"


def _discover() -> dict[str, RuleKind[Any, Any]]:
    """Every ``KIND`` of the modules of ``kinds/``, by name, in module name order."""
    found: dict[str, RuleKind[Any, Any]] = {}
    for info in sorted(pkgutil.iter_modules(_kinds_package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{_kinds_package.__name__}.{info.name}")
        kind = getattr(module, "KIND", None)
        if not isinstance(kind, RuleKind):
            continue
        if kind.name in found:
            raise RuntimeError(f"rule kind {kind.name!r} is defined twice ({info.name})")
        found[kind.name] = kind
    return found


#: Every rule kind, by its ``kind`` name.
RULE_KINDS: Final[dict[str, RuleKind[Any, Any]]] = _discover()

#: Kinds whose rules alert, and kinds whose rules close count periods.
ALERT_KINDS: Final = tuple(name for name, kind in RULE_KINDS.items() if kind.alerts())
COUNT_KINDS: Final = tuple(name for name, kind in RULE_KINDS.items() if kind.counts)


def rule_kind(name: str) -> RuleKind[Any, Any]:
    """The kind called ``name``; :class:`UnknownRuleKindError` naming the known ones if none."""
    kind = RULE_KINDS.get(name)
    if kind is None:
        raise UnknownRuleKindError(f"unknown rule kind {name!r}; known: {sorted(RULE_KINDS)}")
    return kind


if TYPE_CHECKING:
    RuleUnion = RuleConfig
    AlertKind = str
    CountKind = str
else:
    #: One rule of any kind, told apart by ``kind``.
    RuleUnion = Annotated[
        Union[tuple(kind.config for kind in RULE_KINDS.values())],  # noqa: UP007
        Field(discriminator="kind"),
    ]
    #: The ``kind`` of an alert: a kind whose rules alert.
    AlertKind = Literal[ALERT_KINDS]
    #: The ``kind`` of a counts message: a kind whose rules count.
    CountKind = Literal[COUNT_KINDS]

__all__ = [
    "ALERT_KINDS",
    "COUNT_KINDS",
    "RULE_KINDS",
    "AlertKind",
    "AlertWords",
    "CompiledRule",
    "CountKind",
    "CountRecord",
    "Evaluation",
    "Firing",
    "FrameContext",
    "RuleConfig",
    "RuleFrame",
    "RuleKind",
    "RuleTable",
    "RuleUnion",
    "TrackView",
    "UnknownRuleKindError",
    "rule_kind",
]
