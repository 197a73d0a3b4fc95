"""Help text and arguments the ``vsa`` subcommands share: one line per action of a multi-action
command (``vsa devstack up|down|...``), and a service command's ``--config``/``--print-config``
with a pointer to where its settings are documented.

Imports nothing heavy: it runs every time ``vsa`` builds its parser.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Mapping
from pathlib import Path

#: The settings reference generated from the models (``python -m vsa.runtime.settings_doc``).
SETTINGS_DOC = "docs/settings.md"


def add_action_argument(parser: argparse.ArgumentParser, actions: Mapping[str, str]) -> None:
    """Add the positional ``action`` (one of ``actions``) and list every action with its
    description under "actions:" at the end of the parser's help."""
    parser.add_argument("action", choices=list(actions), help="What to do (see actions below).")
    width = max(len(name) for name in actions)
    lines = ["actions:"] + [f"  {name:<{width}}  {text}" for name, text in actions.items()]
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "\n\n".join(filter(None, ["\n".join(lines), parser.epilog]))


def settings_epilog(settings_class: str, env_prefix: str, config_flags: bool = True) -> str:
    """The paragraph a service's ``--help`` ends with: where its settings are documented
    (``config_flags``: the command has ``--config`` and ``--print-config``)."""
    keys = f"every {settings_class} key (--config YAML) and its" if config_flags else "every"
    values = (
        "; --print-config shows the values in effect and where each came from"
        if config_flags
        else ""
    )
    return textwrap.fill(
        f"settings: {keys} {env_prefix}* environment variable, with type, default, bounds and "
        f"description, is listed in {SETTINGS_DOC} (section {settings_class}){values}. "
        f"Connections: KAFKA_* and OPENSEARCH_* (same page).",
        width=78,
    )


def add_print_config(parser: argparse.ArgumentParser) -> None:
    """Add ``--print-config`` (the flag every service command has)."""
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="Print the effective settings (secrets masked) and where each came from, then exit.",
    )


def add_service_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    settings_class: str,
    env_prefix: str,
) -> argparse.ArgumentParser:
    """A service command's parser with ``--config``, ``--print-config`` and the settings note."""
    parser = sub.add_parser(name, help=summary, epilog=settings_epilog(settings_class, env_prefix))
    parser.add_argument("--config", type=Path, help=f"YAML file with {settings_class} keys.")
    add_print_config(parser)
    return parser
