"""``vsa captioner``: the captioning service."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``vsa captioner``."""
    p = sub.add_parser("captioner", help="Run the captioner (keyframes → captions topic).")
    p.add_argument("--config", type=Path, help="YAML file with CaptionerSettings keys.")
    p.set_defaults(func=captioner_main)


def captioner_main(args: argparse.Namespace) -> int:
    from vsa.runtime.settings import load_settings

    from .config import CaptionerSettings
    from .service import run

    return run(load_settings(CaptionerSettings, args.config))
