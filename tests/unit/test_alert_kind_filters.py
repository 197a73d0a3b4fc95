"""Every alert kind the rule table knows can be asked for at once, wherever alerts are filtered
by kind (the bounds were a literal 4 when two new kinds arrived)."""

from __future__ import annotations

from vsa.schemas import ALERT_KINDS
from vsa.services.api.routes import Kinds
from vsa.services.indexer.alert_history import AlertQuery
from vsa.services.indexer.search import SearchQuery
from vsa.services.notifier.config import NotifierSettings


def test_every_alert_kind_is_accepted_together() -> None:
    kinds = tuple(ALERT_KINDS)
    assert len(kinds) > 4
    settings = NotifierSettings.model_validate(
        {"kinds": kinds, "webhook": {"url": "http://127.0.0.1:9/hook"}}
    )
    assert settings.kinds == kinds
    assert AlertQuery(kinds=kinds).kinds == kinds
    assert SearchQuery(text="a person", alert_kinds=kinds).alert_kinds == kinds


def test_the_api_bound_and_help_follow_the_rule_table() -> None:
    query = getattr(Kinds, "__metadata__")[0]  # noqa: B009 - Annotated's metadata, untyped
    assert any(getattr(m, "max_length", None) == len(ALERT_KINDS) for m in query.metadata)
    assert all(kind in query.description for kind in ALERT_KINDS)
