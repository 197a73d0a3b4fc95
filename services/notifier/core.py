"""The notifier's pure core: which alerts go out, what an answer means, when to try again.

No I/O here: a sink's one attempt (``send``) and the wait between attempts (``wait``) are passed
in, so the retry loop is tested with plain functions.

Retry schedule: try ``max_tries`` times; before try n (n >= 2) wait
``min(backoff_max_s, backoff_s * 2 ** (n - 2))`` seconds (0.5, 1, 2, 4... with the defaults).
What is retried: timeouts, refused or reset connections, HTTP 408, 425, 429 and 5xx. What is
not: any other answer (a 4xx says the request itself is wrong; sending it again cannot help).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

from vsa.schemas import Alert

Outcome = Literal["delivered", "retry", "failed"]

#: HTTP statuses worth another try besides 5xx: request timeout, too early, too many requests.
RETRIED_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Attempt:
    """One try of one sink: its outcome and a short reason for people ('HTTP 503 Service
    Unavailable', 'no answer within 5 s')."""

    outcome: Outcome
    detail: str


@dataclass(frozen=True)
class RetryPolicy:
    """``max_tries`` tries per alert and sink, waits doubling from ``backoff_s`` up to
    ``backoff_max_s`` (seconds)."""

    max_tries: int = 5
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0

    def delay_after(self, tries: int) -> float:
        """Seconds to wait after failed try number ``tries`` (from 1) before the next one."""
        return float(min(self.backoff_max_s, self.backoff_s * 2 ** (tries - 1)))


@dataclass(frozen=True)
class DeliveryReport:
    """How delivering one alert to one sink ended."""

    sink: str
    outcome: Outcome  # the last attempt's: delivered, failed (for good) or retry (tries spent)
    tries: int
    detail: str  # the last attempt's

    @property
    def delivered(self) -> bool:
        return self.outcome == "delivered"

    def error(self, endpoint: str) -> str:
        """The dead-letter reason: which sink, where, how many tries, the last answer."""
        if self.outcome == "failed":
            return f"{self.sink} {endpoint} refused the alert: {self.detail} (not retried)"
        return f"{self.sink} {endpoint}: not delivered after {self.tries} tries: {self.detail}"


class StoppedError(Exception):
    """The service is stopping while a delivery waits for its next try."""


#: Called after a failed try that will be retried: (tries so far, the attempt, seconds to wait).
RetryHook = Callable[[int, Attempt, float], None]


def http_outcome(status: int) -> Outcome:
    """What an HTTP answer means for a delivery: 2xx delivered; 408, 425, 429, 5xx retry;
    anything else (3xx, other 4xx) failed for good."""
    if 200 <= status < 300:
        return "delivered"
    if status >= 500 or status in RETRIED_STATUSES:
        return "retry"
    return "failed"


def deliver(
    sink: str,
    send: Callable[[], Attempt],
    policy: RetryPolicy,
    wait: Callable[[float], bool],
    on_retry: RetryHook | None = None,
) -> DeliveryReport:
    """Try ``send`` until it delivers, fails for good or ``policy.max_tries`` are spent.

    ``wait(seconds)`` sleeps between tries and returns False when the service is stopping:
    then :class:`StoppedError` is raised and nothing is reported (the alert is not committed, so
    it is delivered again after the restart)."""
    tries = 0
    while True:
        tries += 1
        attempt = send()
        if attempt.outcome != "retry" or tries >= policy.max_tries:
            return DeliveryReport(sink, attempt.outcome, tries, attempt.detail)
        delay = policy.delay_after(tries)
        if on_retry is not None:
            on_retry(tries, attempt, delay)
        if not wait(delay):
            raise StoppedError(f"{sink}: stopping after {tries} tries ({attempt.detail})")


def alert_wanted(alert: Alert, cameras: Collection[str], kinds: Collection[str]) -> bool:
    """Whether the notifier forwards ``alert`` (empty filters let everything through)."""
    return (not cameras or alert.camera_id in cameras) and (not kinds or alert.kind in kinds)


def mqtt_topic(template: str, alert: Alert) -> str:
    """The MQTT topic of ``alert``: ``template`` with {camera_id}, {kind}, {rule_id} and
    {class_name} filled in (ids hold no MQTT wildcards or '/': see the schemas' id pattern;
    a class name's '/', '+' or '#' is replaced by '_')."""
    class_name = alert.class_name.replace("/", "_").replace("+", "_").replace("#", "_")
    return template.format(
        camera_id=alert.camera_id, kind=alert.kind, rule_id=alert.rule_id, class_name=class_name
    )
