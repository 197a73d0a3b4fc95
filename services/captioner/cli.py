"""``vsa captioner``: the captioning service."""

from __future__ import annotations

import argparse

from vsa.helptext import add_service_parser


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``vsa captioner``."""
    p = add_service_parser(
        sub,
        "captioner",
        "Run the captioner (keyframes → captions topic).",
        "CaptionerSettings",
        "VSA_CAPTIONER_",
    )
    from vsa.topic_flags import add_topic_prefix

    add_topic_prefix(p, "VSA_CAPTIONER_TOPICS__PREFIX")
    p.set_defaults(func=captioner_main)


def captioner_main(args: argparse.Namespace) -> int:
    from vsa.runtime.settings import load_settings
    from vsa.topic_flags import topic_overrides

    from .config import CaptionerSettings
    from .service import run

    overrides = topic_overrides(args)
    settings = load_settings(CaptionerSettings, args.config, **overrides)
    if args.print_config:
        from vsa.runtime.print_config import print_config

        return print_config(settings, args.config, overrides)
    return run(settings)
