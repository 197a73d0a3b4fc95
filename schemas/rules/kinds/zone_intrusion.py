"""Zone intrusion: alert when a tracked object has been inside a zone for ``min_dwell_s``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from ...common import Identifier, Seconds
from ..base import AlertWords, RuleConfig
from ..zones import dwell_kind

if TYPE_CHECKING:
    from ...alerts import Alert


class ZoneIntrusionRule(RuleConfig):
    """Alert when a tracked object is inside a zone for at least ``min_dwell_s``."""

    kind: Literal["zone_intrusion"] = "zone_intrusion"
    zone_id: Identifier
    min_dwell_s: Seconds = Field(
        0.0, description="Seconds inside before alerting; raise it to ignore brief passes."
    )


def phrase(alert: Alert, words: AlertWords) -> str:
    """ "a person in red entered zone 'gate'"."""
    return f"{words.subject} entered zone '{words.zone(alert.details.get('zone_id', ''))}'"


KIND = dwell_kind(
    "zone_intrusion", ZoneIntrusionRule, lambda rule: (rule.zone_id, rule.min_dwell_s), phrase
)
