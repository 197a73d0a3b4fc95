"""What ``vsa topics list`` and ``vsa topics delete`` ask Kafka: which topics exist, with their
partitions, how many messages each holds (high minus low watermark, summed over partitions) and
how far behind each consumer group is; and the rules by which a delete is refused."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from vsa.runtime.settings import KafkaSettings
from vsa.runtime.topic_check import admin_client, create_command, unreachable_message

#: (topic, partition) -> (low watermark, high watermark)
Watermarks = dict[tuple[str, int], tuple[int, int]]
#: group -> (topic, partition) -> committed offset
Commits = dict[str, dict[tuple[str, int], int]]


def watermarks(
    admin: AdminClient, metadata: Any, names: Iterable[str], timeout_s: float = 10.0
) -> Watermarks:
    """Low and high watermarks of every partition of the existing topics among ``names``, in
    two batched requests (earliest, latest)."""
    partitions = [
        TopicPartition(name, p)
        for name in names
        if (topic := metadata.topics.get(name)) is not None and topic.error is None
        for p in sorted(topic.partitions)
    ]
    if not partitions:
        return {}
    ends: dict[str, dict[tuple[str, int], int]] = {}
    earliest, latest = OffsetSpec.earliest(), OffsetSpec.latest()  # type: ignore[no-untyped-call]
    for end, spec in (("low", earliest), ("high", latest)):
        futures = admin.list_offsets({tp: spec for tp in partitions}, request_timeout=timeout_s)
        ends[end] = {
            (tp.topic, tp.partition): int(future.result().offset) for tp, future in futures.items()
        }
    return {key: (ends["low"][key], ends["high"][key]) for key in ends["low"]}


def message_counts(
    kafka: KafkaSettings, names: Iterable[str], timeout_s: float = 10.0
) -> dict[str, int]:
    """Messages retained per existing topic among ``names`` (missing topics are left out)."""
    admin = admin_client(kafka)
    names = list(names)
    metadata = admin.list_topics(timeout=timeout_s)
    marks = watermarks(admin, metadata, names, timeout_s)
    counts = {name: 0 for name in names if name in {topic for topic, _ in marks}}
    for (topic, _), (low, high) in marks.items():
        counts[topic] += max(0, high - low)
    return counts


def group_commits(admin: AdminClient, topics: Collection[str], timeout_s: float = 10.0) -> Commits:
    """Committed offsets on ``topics`` of every consumer group that has any (one request per
    group, all in flight together: the API takes one group at a time)."""
    groups = admin.list_consumer_groups(request_timeout=timeout_s).result().valid
    pending = [
        admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group.group_id)], request_timeout=timeout_s
        )
        for group in groups
    ]
    commits: Commits = {}
    for futures in pending:
        for group_id, future in futures.items():
            try:
                result = future.result()
            except KafkaException:  # the group went away meanwhile
                continue
            for tp in result.topic_partitions or []:
                if tp.topic in topics and tp.offset >= 0:
                    commits.setdefault(group_id, {})[(tp.topic, tp.partition)] = tp.offset
    return commits


@dataclass(frozen=True)
class TopicState:
    """What ``vsa topics list`` shows of one topic; ``partitions`` None: it does not exist."""

    name: str
    planned: bool
    partitions: int | None = None
    messages: int = 0
    lag: Mapping[str, int] = field(default_factory=dict)  # consumer group -> messages behind


def topic_states(
    planned: Sequence[str],
    partitions: Mapping[str, int],
    marks: Watermarks,
    commits: Commits,
    prefix: str,
) -> list[TopicState]:
    """The planned topics in order (missing ones with ``partitions`` None), then the other
    existing topics of a non-empty ``prefix``. Messages: high minus low watermark summed over
    partitions. Lag of a group that committed on a topic: high watermark minus its committed
    offset, summed over partitions; a partition it never committed counts from the low
    watermark (vsa consumers start at the earliest offset)."""
    others = sorted(
        name for name in partitions if prefix and name.startswith(prefix) and name not in planned
    )
    states = []
    for name in [*planned, *others]:
        if name not in partitions:
            states.append(TopicState(name, planned=True))
            continue
        ends = [marks.get((name, p), (0, 0)) for p in range(partitions[name])]
        lag = {}
        for group, offsets in sorted(commits.items()):
            if any(topic == name for topic, _ in offsets):
                lag[group] = sum(
                    max(0, high - offsets.get((name, p), low)) for p, (low, high) in enumerate(ends)
                )
        messages = sum(max(0, high - low) for low, high in ends)
        states.append(TopicState(name, name in planned, partitions[name], messages, lag))
    return states


def describe_topics(
    kafka: KafkaSettings, planned: Sequence[str], prefix: str, timeout_s: float = 10.0
) -> list[TopicState]:
    """Asks Kafka for :func:`topic_states` (KafkaException when it does not answer)."""
    admin = admin_client(kafka)
    metadata = admin.list_topics(timeout=timeout_s)
    partitions = {
        name: len(topic.partitions)
        for name, topic in metadata.topics.items()
        if topic.error is None and not name.startswith("__")
    }
    shown = [name for name in partitions if name in planned or (prefix and name.startswith(prefix))]
    marks = watermarks(admin, metadata, shown, timeout_s)
    commits = group_commits(admin, set(shown), timeout_s)
    return topic_states(planned, partitions, marks, commits, prefix)


def format_topic_states(states: Sequence[TopicState], prefix: str) -> list[str]:
    """The lines ``vsa topics list`` prints: a table, then what to do about missing topics."""
    width = max([len("topic"), *(len(s.name) for s in states)])
    lines = [f"{'topic':<{width}}  {'partitions':>10}  {'messages':>10}  consumer lag by group"]
    for state in states:
        if state.partitions is None:
            lines.append(f"{state.name:<{width}}  {'MISSING':>10}  {'-':>10}  -")
            continue
        lag = ", ".join(f"{group}={count}" for group, count in state.lag.items()) or "-"
        note = "" if state.planned else "  (not a vsa topic)"
        lines.append(
            f"{state.name:<{width}}  {state.partitions:>10}  {state.messages:>10}  {lag}{note}"
        )
    missing = [s.name for s in states if s.partitions is None]
    if missing:
        lines.append(
            f"{len(missing)} of {sum(s.planned for s in states)} topics missing; "
            f"create them with: {create_command(prefix)}"
        )
    return lines


def delete_refusal(
    counts: Mapping[str, int], *, prefix: str, yes: bool, force: bool, interactive: bool
) -> str | None:
    """Why a delete must not go ahead without asking (None: go ahead, or ask when interactive).

    Non-interactive runs need ``--yes``; topics that hold messages need ``--force``.
    """
    full = sorted(name for name, count in counts.items() if count > 0)
    if full and not force:
        listed = ", ".join(f"{name} ({counts[name]} messages)" for name in full)
        return f"refusing to delete topics that hold messages: {listed}; add --force"
    if not yes and not interactive:
        where = "the PRODUCTION topics (no --prefix)" if not prefix else "these topics"
        return f"refusing to delete {where} without confirmation; add --yes"
    return None


def unreachable(kafka: KafkaSettings, timeout_s: float = 5.0) -> str | None:
    """One line saying Kafka cannot be reached within ``timeout_s`` (None when it answers).

    librdkafka's own connection-refused lines go to a silent logger, so the caller prints one
    clear line instead of a flood.
    """
    try:
        admin_client(kafka).list_topics(timeout=timeout_s)
    except KafkaException:
        return unreachable_message(kafka, timeout_s)
    return None
