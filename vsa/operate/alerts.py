"""``vsa alerts tail|list``: follow the alerts topic live, or list the alert history.

``tail`` reads the alerts topic as a bystander (partitions assigned by hand, no consumer group,
no commits: the pipeline's groups are never disturbed), from now or from the beginning of what
Kafka retains. ``list`` asks the alerts index that the indexer keeps in OpenSearch (newest
first). Both print one line per alert, or with ``--json`` one alert per line exactly as the
alerts topic carries it (the ``Alert`` model, schemas/json).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import get_args

from vsa.schemas import Alert, AlertKind, SchemaError
from vsa.services.notifier.core import alert_wanted

from .common import add_actions, add_topic_prefix

ACTIONS = {
    "tail": "Follow the alerts topic from now (or --from-beginning), one line per alert.",
    "list": "List alerts from the alerts index in OpenSearch, newest first, with filters.",
}
ALERT_KINDS: tuple[str, ...] = get_args(AlertKind)


def alert_line(alert: Alert) -> str:
    """One line for people: UTC time, camera, kind, rule, class, tracks, frame, details, id."""
    when = datetime.fromtimestamp(alert.ts, tz=timezone.utc)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    tracks = ",".join(str(t) for t in alert.track_ids)
    details = " ".join(f"{k}={v}" for k, v in sorted(alert.details.items()))
    return (
        f"{stamp}  {alert.camera_id}  {alert.kind}  rule={alert.rule_id} "
        f"class={alert.class_name} tracks={tracks} frame_seq={alert.frame_seq}"
        + (f" {details}" if details else "")
        + f" id={alert.alert_id}"
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``vsa alerts`` and its actions."""
    summary = "Follow the alerts topic or list the alert history (OpenSearch)."
    for action, a in add_actions(sub, "alerts", summary, __doc__ or "", ACTIONS):
        a.add_argument(
            "--camera", action="append", default=[], help="Only this camera (repeatable)."
        )
        a.add_argument(
            "--kind",
            action="append",
            default=[],
            choices=ALERT_KINDS,
            help="Only this alert kind (repeatable).",
        )
        a.add_argument("--json", action="store_true", help="One alert per line as JSON.")
        if action == "tail":
            add_topic_prefix(a)
            a.add_argument(
                "--from-beginning",
                action="store_true",
                help="Start at the oldest alert Kafka retains instead of now.",
            )
            a.add_argument("-n", "--count", type=int, help="Exit after printing this many alerts.")
            a.set_defaults(func=tail_main)
        else:
            a.add_argument("--since", help="ISO 8601 (naive = UTC) or an age: 30m, 2h, 7d.")
            a.add_argument("--until", help="ISO 8601 (naive = UTC) or an age: 30m, 2h, 7d.")
            a.add_argument(
                "--limit", type=int, default=20, help="Newest alerts to show, 1..1000 (20)."
            )
            a.add_argument("--config", type=Path, help="YAML file with SearchSettings keys.")
            a.set_defaults(func=list_main)


def _print(alert: Alert, as_json: bool) -> None:
    print(alert.model_dump_json() if as_json else alert_line(alert), flush=True)


def tail_main(args: argparse.Namespace) -> int:
    """``vsa alerts tail``: print alerts until Ctrl-C (or ``--count``)."""
    from vsa.runtime.settings import KafkaSettings, load_settings
    from vsa.runtime.tail import TopicTail

    from .common import topic_names, topic_problem

    names = topic_names(args.topic_prefix)
    topic = names.name("alerts")
    kafka = load_settings(KafkaSettings)
    problem = topic_problem(kafka, topic, names.prefix)
    if problem is not None:
        print(f"vsa alerts tail: {problem}", file=sys.stderr)
        return 1
    tail = TopicTail(kafka, topic, "alerts-tail", from_beginning=args.from_beginning)
    try:
        partitions = tail.start()
        start = "the beginning" if args.from_beginning else "now"
        print(f"following {topic} ({partitions} partitions) from {start}", file=sys.stderr)
        sys.stderr.flush()
        printed = 0
        while args.count is None or printed < args.count:
            for record in tail.poll():
                if _show(record.value, record.partition, record.offset, args):
                    printed += 1
                    if args.count is not None and printed >= args.count:
                        break
    except KeyboardInterrupt:
        pass
    finally:
        tail.close()
    return 0


def _show(value: bytes | None, partition: int, offset: int, args: argparse.Namespace) -> bool:
    """Print one record if it is an alert that passes the filters; whether it was printed."""
    if value is None:
        return False
    try:
        alert = Alert.from_bytes(value)
    except SchemaError as exc:
        print(f"skipped alerts[{partition}]@{offset}: {exc}", file=sys.stderr)
        return False
    if not alert_wanted(alert, args.camera, args.kind):
        return False
    _print(alert, args.json)
    return True


def list_main(args: argparse.Namespace) -> int:
    """``vsa alerts list``: the newest alerts of the alerts index; 2 for invalid filters."""
    from vsa.runtime.settings import load_settings
    from vsa.services.indexer.alert_history import AlertHistory, AlertQuery
    from vsa.services.indexer.search import QueryError, SearchUnavailableError, parse_time
    from vsa.services.indexer.settings import SearchSettings
    from vsa.services.indexer.store import make_client

    try:
        query = AlertQuery.parse(
            cameras=tuple(args.camera),
            kinds=tuple(args.kind),
            since=parse_time(args.since) if args.since else None,
            until=parse_time(args.until) if args.until else None,
            limit=args.limit,
        )
    except QueryError as exc:
        print(f"vsa alerts list: invalid filters: {exc}", file=sys.stderr)
        return 2
    settings = load_settings(SearchSettings, args.config)
    history = AlertHistory(make_client(settings.opensearch, settings.request_timeout_s), settings)
    try:
        alerts = history.list(query)
    except SearchUnavailableError as exc:
        print(f"vsa alerts list: {exc}", file=sys.stderr)
        return 1
    for alert in alerts:
        _print(alert, args.json)
    if not alerts and not args.json:
        print("no alerts")
    if history.skipped:
        print(f"note: {history.skipped} documents were not valid alerts", file=sys.stderr)
    return 0
