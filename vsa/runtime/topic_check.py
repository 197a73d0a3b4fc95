"""Which of the topics a service or command needs are missing, and what to say about it.

Auto topic creation is off: topics come from ``vsa topics create``. A service started before its
topics exist (a new prefix, a fresh cluster) must not crash: it says once, in one structured line,
which topics are missing and the command that creates them, is not ready meanwhile (``/readyz``
503, blocker ``topics_missing``) and goes on by itself once they appear (:class:`TopicWait`). A
command (``vsa produce``) says the same in one line and exits instead (:func:`missing_message`).
The services and the CLI share this module, so both name the same topics and the same command.
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from vsa.runtime.logs import event
from vsa.runtime.metrics import Health
from vsa.runtime.settings import KafkaSettings

log = logging.getLogger("vsa.topics")

#: Seconds between two looks at the cluster's metadata while topics are missing.
CHECK_EVERY_S = 2.0
#: Longest one metadata request may take before Kafka counts as unreachable for this look.
METADATA_TIMEOUT_S = 5.0
#: Readiness blockers set here (``/readyz`` shows them under ``blocked``).
BLOCKER = "topics_missing"
UNREACHABLE_BLOCKER = "kafka_brokers"


class MetadataClient(Protocol):
    """What the check needs of a confluent-kafka client (Consumer, Producer or AdminClient)."""

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any: ...


def create_command(prefix: str) -> str:
    """The command that creates every topic of the pipeline with this topic prefix."""
    return "vsa topics create" + (f" --topic-prefix {shlex.quote(prefix)}" if prefix else "")


def missing_topics(existing: Collection[str], needed: Iterable[str]) -> list[str]:
    """The names of ``needed`` not in ``existing``, in the order given, each once."""
    missing: list[str] = []
    for name in needed:
        if name not in existing and name not in missing:
            missing.append(name)
    return missing


def missing_message(missing: Sequence[str], prefix: str) -> str:
    """One line for people: which topics do not exist and how to create them."""
    one = len(missing) == 1
    names = ", ".join(missing)
    return (
        f"topic{'' if one else 's'} {names} {'does' if one else 'do'} not exist; "
        f"create {'it' if one else 'them'} with: {create_command(prefix)}"
    )


def admin_client(kafka: KafkaSettings) -> AdminClient:
    """An admin client for metadata looks whose librdkafka log lines (a refused connection
    every reconnect) go nowhere: the caller says what matters in one line."""
    silent = logging.getLogger("vsa.topics.librdkafka")
    silent.setLevel(logging.CRITICAL + 1)
    silent.propagate = False
    config: dict[str, Any] = {**kafka.client_config(), "logger": silent}
    return AdminClient(config)


def unreachable_message(kafka: KafkaSettings, timeout_s: float) -> str:
    """One line for people: Kafka did not answer, and how to start it or point at another."""
    return (
        f"Kafka at {kafka.bootstrap_servers} is unreachable (no answer in {timeout_s:g} s); "
        "start it with: vsa devstack up, or set KAFKA_BOOTSTRAP_SERVERS"
    )


def topics_problem(
    kafka: KafkaSettings,
    needed: Iterable[str],
    prefix: str,
    timeout_s: float = METADATA_TIMEOUT_S,
) -> str | None:
    """For commands that stop instead of waiting: None when every needed topic exists, else one
    line saying which are missing (and the create command) or that Kafka is unreachable."""
    try:
        existing = existing_topics(admin_client(kafka), timeout_s)
    except KafkaException:
        return unreachable_message(kafka, timeout_s)
    missing = missing_topics(existing, needed)
    return missing_message(missing, prefix) if missing else None


def existing_topics(client: MetadataClient, timeout_s: float = METADATA_TIMEOUT_S) -> set[str]:
    """Names of the topics in the cluster's metadata (a topic whose metadata carries an error,
    such as one being deleted, does not count).

    Raises:
        KafkaException: no broker answered within ``timeout_s``.
    """
    topics = client.list_topics(timeout=timeout_s).topics
    return {name for name, meta in topics.items() if meta.error is None}


class TopicWait:
    """Waits until every topic a service needs exists, the service not ready meanwhile.

    Args:
        needed: full topic names the service reads or writes.
        prefix: the topic prefix, for the command in the message.
        health: gets the ``topics_missing`` blocker (and ``kafka_brokers`` while Kafka does not
            answer) and a beat on every look, so liveness stays true while it waits.

    One ``topics_missing`` line (WARNING) when topics are found missing, again only if the set
    changes; one ``topics_present`` line when they are all there after a wait.
    """

    def __init__(self, needed: Iterable[str], prefix: str, health: Health | None = None) -> None:
        self.needed = list(dict.fromkeys(needed))
        self.prefix = prefix
        self.health = health or Health()
        self.missing: list[str] = []
        self._unreachable = False

    def check(self, client: MetadataClient, timeout_s: float = METADATA_TIMEOUT_S) -> bool:
        """One look at the metadata: whether every needed topic exists (False also while Kafka
        does not answer)."""
        self.health.beat()
        try:
            existing = existing_topics(client, timeout_s)
        except KafkaException as exc:
            self._kafka_unreachable(exc, timeout_s)
            return False
        if self._unreachable:
            self._unreachable = False
            self.health.unblock(UNREACHABLE_BLOCKER)
        missing = missing_topics(existing, self.needed)
        if missing and missing != self.missing:
            message = missing_message(missing, self.prefix)
            event(
                log,
                BLOCKER,
                logging.WARNING,
                topics=",".join(missing),
                create=create_command(self.prefix),
                reason=message,
            )
            self.health.block(BLOCKER, message)
        elif not missing and self.missing:
            event(log, "topics_present", topics=",".join(self.needed))
            self.health.unblock(BLOCKER)
        self.missing = missing
        return not missing

    def wait(
        self,
        client: MetadataClient,
        stopped: Callable[[], bool],
        give_up_after_s: float | None = None,
    ) -> bool:
        """Look every :data:`CHECK_EVERY_S` until the topics exist (True), ``stopped()`` turns
        true or ``give_up_after_s`` passed (False)."""
        started = time.monotonic()
        while not stopped():
            if self.check(client):
                return True
            if give_up_after_s is not None and time.monotonic() - started >= give_up_after_s:
                return False
            deadline = time.monotonic() + CHECK_EVERY_S
            while not stopped() and time.monotonic() < deadline:
                self.health.beat()
                time.sleep(0.1)
        return False

    def _kafka_unreachable(self, exc: KafkaException, timeout_s: float) -> None:
        if not self._unreachable:
            event(
                log,
                "topics_check_failed",
                logging.WARNING,
                error=str(exc)[:300],
                waited_s=timeout_s,
            )
        self._unreachable = True
        self.health.block(UNREACHABLE_BLOCKER, f"Kafka did not answer in {timeout_s:g} s")
