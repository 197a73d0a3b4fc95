"""``vsa notifier``: the notifier service (alerts to a webhook and/or MQTT)."""

from __future__ import annotations

import argparse

from vsa.helptext import add_service_parser
from vsa.topic_flags import add_topic_prefix, topic_overrides


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``vsa notifier``."""
    p = add_service_parser(
        sub,
        "notifier",
        "Run the notifier (alerts → webhook and/or MQTT; undelivered → dlq.notifier).",
        "NotifierSettings",
        "VSA_NOTIFIER_",
    )
    p.description = (
        "Forward every alert to a webhook (HTTP POST of the alert's JSON) and/or an MQTT broker, "
        "retrying with back-off; an alert not delivered after the last try goes to the "
        "dlq.notifier topic with the reason. Needs VSA_NOTIFIER_WEBHOOK__URL and/or "
        "VSA_NOTIFIER_MQTT__HOST."
    )
    add_topic_prefix(p, "VSA_NOTIFIER_TOPICS__PREFIX")
    p.set_defaults(func=notifier_main)


def notifier_main(args: argparse.Namespace) -> int:
    from vsa.runtime.settings import load_settings

    from .config import NotifierSettings
    from .service import run

    overrides = topic_overrides(args)
    settings = load_settings(NotifierSettings, args.config, **overrides)
    if args.print_config:
        from vsa.runtime.print_config import print_config

        return print_config(settings, args.config, overrides)
    return run(settings)
