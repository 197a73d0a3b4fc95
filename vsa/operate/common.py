"""What ``vsa cameras`` and ``vsa alerts`` share: topic names from ``--topic-prefix`` and a
one-line answer when Kafka or the topic is not there."""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping

from vsa.runtime.settings import KafkaSettings, TopicNames, load_settings


def add_actions(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    command: str,
    summary: str,
    doc: str,
    actions: Mapping[str, str],
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Add ``vsa <command>`` with one sub-parser per action (``vsa cameras add ...``); yields
    (action, parser) for the caller to add its flags. The command's description is ``doc``
    after its first paragraph, without reST quotes."""
    parser = sub.add_parser(
        command, help=summary, description=doc.split("\n\n", 1)[1].replace("``", "'")
    )
    subparsers = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in actions.items():
        yield action, subparsers.add_parser(action, help=text, description=text)


def add_topic_prefix(parser: argparse.ArgumentParser) -> None:
    """``--topic-prefix``, as every command that reads or writes the pipeline's topics has it."""
    from vsa.topic_flags import add_topic_prefix as add_flag

    add_flag(parser, "VSA_TOPICS_NAMES__PREFIX")


def topic_names(prefix: str | None) -> TopicNames:
    """The pipeline's topic names: ``--topic-prefix`` when given, else the ``vsa topics`` layout
    from the environment (``VSA_TOPICS_NAMES__PREFIX``)."""
    from vsa.runtime.topics import TopicsSettings

    if prefix is not None:
        return TopicNames(prefix=prefix)
    return load_settings(TopicsSettings).names


def topic_problem(
    kafka: KafkaSettings, topic: str, prefix: str, timeout_s: float = 5.0
) -> str | None:
    """One line when Kafka cannot be reached or ``topic`` does not exist (None: all there); the
    same words as the services' ``topics_missing`` line (:mod:`vsa.runtime.topic_check`)."""
    from vsa.runtime.topic_check import topics_problem

    return topics_problem(kafka, [topic], prefix, timeout_s)
