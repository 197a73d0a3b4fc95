"""``vsa captioner``: the captioning service."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``vsa captioner``."""
    p = sub.add_parser("captioner", help="Run the captioner (keyframes → captions topic).")
    p.add_argument("--config", type=Path, help="YAML file with CaptionerSettings keys.")
    p.add_argument(
        "--print-config",
        action="store_true",
        help="Print the effective settings (secrets masked) and where each came from, then exit.",
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
