"""Issue 15 points 6 and 9: no reST markup in any --help text, every subcommand and every action of
a multi-action command (vsa devstack up|down|...) described, and every service's help points at
the settings reference."""

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
                for full, p, summary in _parsers(sub, f"{name} {sub_name}"):
                    # a nested subcommand (vsa cameras add) keeps the summary its parent gave it
                    yield full, p, helps.get(sub_name) if full == f"{name} {sub_name}" else summary


def test_help_has_no_rest_markup_and_every_subcommand_is_described() -> None:
    found = list(_parsers(build_parser(), "vsa"))
    assert len(found) > 10
    for name, parser, summary in found:
        text = parser.format_help()
        assert not REST.search(text), f"{name} --help has reST markup: {REST.findall(text)}"
        if name != "vsa":
            assert summary, f"{name} has no help line in 'vsa --help'"


def _undescribed_actions(parser: argparse.ArgumentParser) -> list[str]:
    """Choices of positional arguments that no line of the help describes ('  up   start ...')."""
    text = parser.format_help()
    missing = []
    for action in parser._actions:
        if action.option_strings or not action.choices:
            continue
        if isinstance(action, argparse._SubParsersAction):
            continue
        for choice in action.choices:
            if not re.search(rf"^\s+{re.escape(str(choice))}\s+\S", text, re.MULTILINE):
                missing.append(str(choice))
    return missing


def test_every_action_of_a_multi_action_command_is_described() -> None:
    found = {name: parser for name, parser, _ in _parsers(build_parser(), "vsa")}
    checked = [name for name, p in found.items() if _positional_choices(p)]
    assert {"vsa devstack", "vsa topics", "vsa models"} <= set(checked)
    for name in checked:
        assert _undescribed_actions(found[name]) == [], f"{name} --help: actions not described"


def test_the_action_check_fails_on_an_undescribed_action() -> None:
    parser = argparse.ArgumentParser(prog="x")
    parser.add_argument("action", choices=["up", "down"], help="up: start.")
    assert _undescribed_actions(parser) == ["up", "down"]


def _positional_choices(parser: argparse.ArgumentParser) -> bool:
    return any(
        not a.option_strings and a.choices and not isinstance(a, argparse._SubParsersAction)
        for a in parser._actions
    )


SERVICES = (
    "ingest",
    "detector",
    "tracker",
    "captioner",
    "indexer",
    "search",
    "search-api",
    "notifier",
    "console",
)


def test_every_service_help_points_at_the_settings_reference() -> None:
    found = {name: parser for name, parser, _ in _parsers(build_parser(), "vsa")}
    for service in SERVICES:
        text = " ".join(found[f"vsa {service}"].format_help().split())
        assert "docs/settings.md" in text, f"vsa {service} --help"
        if service != "search":
            assert "--print-config" in text, f"vsa {service} --help"
