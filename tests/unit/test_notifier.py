"""The notifier's pure core and its handler with sinks made of plain functions (no Kafka)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import Message

from vsa.runtime.metrics import Health, ServiceMetrics
from vsa.runtime.service import StopFlag, TransientError
from vsa.runtime.settings import ConfigError, load_settings
from vsa.schemas import Alert, AlertSnapshot, FrameRef, make_alert_id
from vsa.services.notifier.config import NotifierSettings
from vsa.services.notifier.core import (
    Attempt,
    RetryPolicy,
    StoppedError,
    alert_wanted,
    deliver,
    http_outcome,
    mqtt_topic,
)
from vsa.services.notifier.service import NotifierHandler, NotifierMetrics


def make_alert(camera: str = "gate", kind: str = "loitering", seq: int = 7) -> Alert:
    rule = f"{kind}-rule"
    return Alert(
        alert_id=make_alert_id(camera, rule, 3, seq),
        camera_id=camera,
        rule_id=rule,
        kind=kind,  # type: ignore[arg-type]
        track_ids=[3],
        class_name="person",
        ts=1_763_700_000.0 + seq,
        frame_seq=seq,
        snapshot=AlertSnapshot(
            frame=FrameRef(
                topic="frames", partition=0, offset=seq, camera_id=camera, frame_seq=seq
            ),
            xyxy=(1.0, 2.0, 30.0, 40.0),
        ),
        details={"zone_id": "plaza", "dwell_s": 8.5},
    )


def scripted(*outcomes: str) -> tuple[Callable[[], Attempt], list[int]]:
    """A send() that answers with ``outcomes`` in turn, and the list of calls it saw."""
    calls: list[int] = []

    def send() -> Attempt:
        calls.append(len(calls) + 1)
        outcome = outcomes[min(len(calls), len(outcomes)) - 1]
        return Attempt(outcome, f"answer {len(calls)}")  # type: ignore[arg-type]

    return send, calls


def test_http_statuses() -> None:
    assert [http_outcome(s) for s in (200, 201, 204)] == ["delivered"] * 3
    assert [http_outcome(s) for s in (500, 502, 503, 504, 408, 425, 429)] == ["retry"] * 7
    assert [http_outcome(s) for s in (301, 400, 401, 403, 404, 422)] == ["failed"] * 6


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(max_tries=8, backoff_s=0.5, backoff_max_s=3)
    assert [policy.delay_after(n) for n in range(1, 7)] == [0.5, 1, 2, 3, 3, 3]


def test_delivery_retries_then_succeeds_waiting_the_schedule() -> None:
    send, calls = scripted("retry", "retry", "delivered")
    waits: list[float] = []
    retried: list[int] = []
    report = deliver(
        "webhook",
        send,
        RetryPolicy(5, 0.5, 30),
        lambda s: waits.append(s) or True,
        lambda tries, attempt, delay: retried.append(tries),
    )
    assert report.delivered
    assert report.tries == 3
    assert calls == [1, 2, 3]
    assert waits == [0.5, 1.0]
    assert retried == [1, 2]


def test_delivery_gives_up_after_max_tries_with_a_clear_error() -> None:
    send, calls = scripted("retry")
    report = deliver("webhook", send, RetryPolicy(3, 0, 0), lambda s: True)
    assert not report.delivered
    assert report.tries == 3
    assert len(calls) == 3
    assert report.error("https://hooks.example:443") == (
        "webhook https://hooks.example:443: not delivered after 3 tries: answer 3"
    )


def test_a_refusal_is_not_retried() -> None:
    send, calls = scripted("failed")
    report = deliver("webhook", send, RetryPolicy(5, 0, 0), lambda s: True)
    assert calls == [1]
    assert (
        report.error("http://h:80")
        == "webhook http://h:80 refused the alert: answer 1 (not retried)"
    )


def test_stopping_during_a_backoff_raises() -> None:
    send, calls = scripted("retry")
    with pytest.raises(StoppedError):
        deliver("mqtt", send, RetryPolicy(5, 1, 1), lambda s: False)
    assert calls == [1]


def test_filters_and_mqtt_topics() -> None:
    alert = make_alert("gate", "crowding")
    assert alert_wanted(alert, (), ())
    assert alert_wanted(alert, ("gate", "lobby"), ("crowding",))
    assert not alert_wanted(alert, ("lobby",), ())
    assert not alert_wanted(alert, (), ("loitering",))
    assert mqtt_topic("vsa/alerts/{camera_id}/{kind}", alert) == "vsa/alerts/gate/crowding"
    assert mqtt_topic("site/{rule_id}/{class_name}", alert) == "site/crowding-rule/person"


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({}, "no sink: set webhook.url"),
        ({"VSA_NOTIFIER_WEBHOOK__URL": "ftp://x/y"}, "must start with http:// or https://"),
        ({"VSA_NOTIFIER_MQTT__HOST": "m", "VSA_NOTIFIER_MQTT__TOPIC": "a/{zone}"}, "{zone}"),
        ({"VSA_NOTIFIER_MQTT__HOST": "m", "VSA_NOTIFIER_MQTT__TOPIC": "a/#"}, "wildcards"),
    ],
)
def test_settings_refuse_what_cannot_work(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], problem: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=problem.replace("{", "\\{").replace("}", "\\}")):
        load_settings(NotifierSettings)


class ListSink:
    """A sink that answers from a script and keeps what it was sent."""

    def __init__(self, name: str, *outcomes: str) -> None:
        self.name, self.endpoint = name, f"{name}://test:1"
        self.outcomes, self.sent = outcomes, []  # type: ignore[var-annotated]

    def send(self, alert: Alert, body: bytes) -> Attempt:
        self.sent.append(body)
        outcome = self.outcomes[min(len(self.sent), len(self.outcomes)) - 1]
        return Attempt(outcome, f"{self.name} answer {len(self.sent)}")  # type: ignore[arg-type]


def handler(*sinks: ListSink, stop: StopFlag | None = None, **settings: object) -> NotifierHandler:
    fields = {"webhook": {"url": "http://test/"}, "retry": {"backoff_s": 0}, **settings}
    config = NotifierSettings(**fields)  # type: ignore[arg-type]
    metrics = NotifierMetrics(ServiceMetrics("notifier"))
    return NotifierHandler(config, list(sinks), Health(), stop or StopFlag(), metrics)


def message(value: bytes) -> Message:
    return Message(topic="alerts", partition=0, offset=1, key=b"gate", value=value)


def test_handler_delivers_filters_and_reports_failures_for_the_dead_letters() -> None:
    webhook, mqtt = ListSink("webhook", "retry", "delivered"), ListSink("mqtt", "failed")
    h = handler(webhook, mqtt, kinds=("loitering",))
    wanted, other = make_alert(kind="loitering"), make_alert(kind="crowding")
    result = h([message(wanted.to_bytes()), message(other.to_bytes()), message(b"{not json")])
    assert webhook.sent == [wanted.to_bytes(), wanted.to_bytes()]  # retried once, the same body
    assert mqtt.sent == [wanted.to_bytes()]
    assert result.outputs == []
    reasons = [str(exc) for _, exc in result.failures]
    assert reasons[0] == "mqtt mqtt://test:1 refused the alert: mqtt answer 1 (not retried)"
    assert reasons[1].startswith("alerts: ")  # the broken message, with the schema's reason
    assert h.health.blockers == {}
    samples = {
        (s.labels["sink"], s.labels["outcome"]): s.value
        for s in h.metrics.deliveries.collect()[0].samples
        if s.name.endswith("_total")
    }
    assert samples == {("webhook", "delivered"): 1.0, ("mqtt", "failed"): 1.0}


def test_handler_stopping_mid_retry_defers_the_batch() -> None:
    stop = StopFlag()
    stop.set()
    h = handler(ListSink("webhook", "retry"), stop=stop, retry={"backoff_s": 5})
    with pytest.raises(TransientError, match="stopping after 1 tries"):
        h([message(make_alert().to_bytes())])
