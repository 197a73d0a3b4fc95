"""What to do with an OpenSearch bulk response, and how long to wait before trying again (pure).

Per document, a bulk response says one of three things:

- indexed (2xx): done;
- rejected for good (4xx other than 404/429, e.g. ``mapper_parsing_exception``): sending it again
  cannot help, so the message goes to the dead letters;
- failed for now (429 too many requests, 404 index missing, 5xx): send it again after a pause.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

#: Item statuses worth retrying: throttling, a missing index (re-created from the template on
#: the next attempt) and server-side failures.
_RETRY_4XX: Final = frozenset({404, 408, 429})
_MAX_REASON_CHARS: Final = 500


#: Whole-request statuses worth waiting out besides 5xx: credentials being fixed (401, 403),
#: a missing index (404), timeouts (408), throttling (429).
_TRANSIENT_REQUEST_4XX: Final = frozenset({401, 403, 404, 408, 429})


def transient_request_status(status: object) -> bool:
    """Whether a failed request (not one document) with this HTTP status deserves a retry.

    No numeric status means the request never got an answer (connection refused, timeout):
    transient. Other 4xx (400 malformed, 413 too large) will fail the same way again.
    """
    if not isinstance(status, int):
        return True
    return status >= 500 or status in _TRANSIENT_REQUEST_4XX


class DocumentRejectedError(ValueError):
    """OpenSearch refused one document for good (mapping error, bad value); dead-lettered."""


@dataclass(frozen=True)
class BulkOutcome:
    """A bulk response sorted by request position."""

    indexed: list[int] = field(default_factory=list)
    rejected: dict[int, str] = field(default_factory=dict)
    retry: dict[int, str] = field(default_factory=dict)


def item_error(item: Mapping[str, Any]) -> tuple[int, str | None]:
    """(status, reason) of one bulk response item; reason is None when it succeeded."""
    result = next(iter(item.values()))
    status = int(result.get("status", 500))
    error = result.get("error")
    if error is None and 200 <= status < 300:
        return status, None
    if isinstance(error, Mapping):
        reason = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        caused = error.get("caused_by")
        if isinstance(caused, Mapping):
            reason += f" (caused by {caused.get('type', '')}: {caused.get('reason', '')})"
    else:
        reason = str(error or f"status {status}")
    return status, f"status {status}: {reason}"[:_MAX_REASON_CHARS]


def classify_bulk_items(items: Sequence[Mapping[str, Any]]) -> BulkOutcome:
    """Sort the items of a bulk response (same order as the request) into the three outcomes."""
    outcome = BulkOutcome()
    for position, item in enumerate(items):
        status, reason = item_error(item)
        if reason is None:
            outcome.indexed.append(position)
        elif status in _RETRY_4XX or status >= 500:
            outcome.retry[position] = reason
        else:
            outcome.rejected[position] = reason
    return outcome


class Backoff:
    """Exponential back-off with jitter: the n-th wait is drawn from [cap/2, cap] where
    cap = min(max_s, min_s * 2**n). Jitter keeps many pods from retrying in lock-step."""

    def __init__(
        self, min_s: float, max_s: float, rng: Callable[[], float] = random.random
    ) -> None:
        self.min_s = min_s
        self.max_s = max_s
        self.rng = rng
        self.attempt = 0

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt; grows until ``max_s``."""
        cap = min(self.max_s, self.min_s * 2.0 ** min(self.attempt, 62))
        self.attempt += 1
        return cap * (0.5 + 0.5 * self.rng())

    def reset(self) -> None:
        """Start again from ``min_s`` (after a success)."""
        self.attempt = 0
