"""Issue 15 point 9: no reST markup in any --help text, and every subcommand described."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

from vsa.cli import build_parser

REST = re.compile(r"``|:(?:class|func|meth|mod|attr|data|exc):`")


def _parsers(
    parser: argparse.ArgumentParser, name: str
) -> Iterator[tuple[str, argparse.ArgumentParser, str | None]]:
    yield name, parser, None
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for sub_name, sub in action.choices.items():
                for full, p, _ in _parsers(sub, f"{name} {sub_name}"):
                    yield full, p, helps.get(sub_name) if full == f"{name} {sub_name}" else None


def test_help_has_no_rest_markup_and_every_subcommand_is_described() -> None:
    found = list(_parsers(build_parser(), "vsa"))
    assert len(found) > 10
    for name, parser, summary in found:
        text = parser.format_help()
        assert not REST.search(text), f"{name} --help has reST markup: {REST.findall(text)}"
        if name != "vsa":
            assert summary, f"{name} has no help line in 'vsa --help'"
