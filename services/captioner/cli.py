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
    p.set_defaults(func=captioner_main)


def captioner_main(args: argparse.Namespace) -> int:
    from vsa.runtime.settings import load_settings

    from .config import CaptionerSettings
    from .service import run

    settings = load_settings(CaptionerSettings, args.config)
    if args.print_config:
        from vsa.runtime.print_config import print_config

        return print_config(settings, args.config)
    return run(settings)
