"""Loitering: alert when a tracked object stays in a zone for ``dwell_s`` or longer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from ...common import Identifier
from ..base import AlertWords, RuleConfig
from ..zones import dwell_kind

if TYPE_CHECKING:
    from ...alerts import Alert


class LoiteringRule(RuleConfig):
    """Alert when a tracked object stays in a zone for ``dwell_s`` or longer."""

    kind: Literal["loitering"] = "loitering"
    zone_id: Identifier
    dwell_s: float = Field(
        gt=0, allow_inf_nan=False, description="Seconds in the zone that count as loitering."
    )


def phrase(alert: Alert, words: AlertWords) -> str:
    """ "a person in red has been in zone 'gate' for 45 s (loitering)"."""
    zone = words.zone(alert.details.get("zone_id", ""))
    dwell_s = float(alert.details.get("dwell_s", 0))
    return f"{words.subject} has been in zone '{zone}' for {dwell_s:.0f} s (loitering)"


KIND = dwell_kind("loitering", LoiteringRule, lambda rule: (rule.zone_id, rule.dwell_s), phrase)
