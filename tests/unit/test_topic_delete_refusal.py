"""``vsa topics delete`` refusal rules (issue 15, point 3)."""

from __future__ import annotations

from vsa.runtime.topic_admin import delete_refusal


def test_non_interactive_needs_yes() -> None:
    reason = delete_refusal({"t-frames": 0}, prefix="t-", yes=False, force=False, interactive=False)
    assert reason is not None
    assert "--yes" in reason
    assert (
        delete_refusal({"t-frames": 0}, prefix="t-", yes=True, force=False, interactive=False)
        is None
    )


def test_non_empty_topics_need_force_even_with_yes() -> None:
    counts = {"t-frames": 12, "t-alerts": 0}
    reason = delete_refusal(counts, prefix="t-", yes=True, force=False, interactive=False)
    assert reason is not None
    assert "t-frames (12 messages)" in reason
    assert "t-alerts" not in reason
    assert delete_refusal(counts, prefix="t-", yes=True, force=True, interactive=False) is None


def test_production_topics_are_named_as_such() -> None:
    reason = delete_refusal({"frames": 0}, prefix="", yes=False, force=False, interactive=False)
    assert reason is not None
    assert "PRODUCTION" in reason


def test_interactive_without_yes_is_asked_not_refused() -> None:
    assert (
        delete_refusal({"frames": 0}, prefix="", yes=False, force=False, interactive=True) is None
    )
