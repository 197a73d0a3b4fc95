"""The pure parts of a several-node local Kafka: ports, layout, server.properties, status."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from vsa.devstack.errors import DevstackError
from vsa.devstack.kafka import (
    ClusterView,
    KafkaNode,
    bootstrap_servers,
    cluster_health,
    cluster_id,
    kafka_nodes,
    layout_sizes,
    quorum_voters,
    render_server_properties,
)
from vsa.devstack.procs import write_pid
from vsa.devstack.settings import DevstackSettings, NodePorts, kafka_node_ports
from vsa.devstack.stack import ComponentStatus, NodeStatus, StackStatus, format_status
from vsa.runtime.settings import ConfigError, load_settings

from .test_devstack_config import _props


@pytest.fixture(autouse=True)
def _without_devstack_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test stack's VSA_DEVSTACK_* (hstack env.sh) stays out: these tests set what they read."""
    for name in [n for n in os.environ if n.startswith("VSA_DEVSTACK_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def three(tmp_path: Path) -> DevstackSettings:
    """Three nodes from 29092/29093 (the shared test stack's ports, never started here)."""
    folders = {"cache_dir": tmp_path / "cache", "state_dir": tmp_path / "state"}
    return load_settings(
        DevstackSettings, None, brokers=3, kafka_port=29092, kafka_controller_port=29093, **folders
    )


def test_node_ports_step_by_two_from_the_configured_ones(three: DevstackSettings) -> None:
    assert kafka_node_ports(three) == (
        NodePorts(29092, 29093),
        NodePorts(29094, 29095),
        NodePorts(29096, 29097),
    )
    single = three.model_copy(update={"brokers": 1})
    assert kafka_node_ports(single) == (NodePorts(29092, 29093),)


def test_bootstrap_lists_every_node(three: DevstackSettings) -> None:
    assert bootstrap_servers(three) == "127.0.0.1:29092,127.0.0.1:29094,127.0.0.1:29096"


def test_quorum_voters_name_every_controller(three: DevstackSettings) -> None:
    nodes = kafka_nodes(three)
    assert quorum_voters(nodes) == "1@127.0.0.1:29093,2@127.0.0.1:29095,3@127.0.0.1:29097"
    assert quorum_voters(nodes[:1]) == "1@127.0.0.1:29093"


def test_each_node_has_its_own_folder_pid_file_and_log(three: DevstackSettings) -> None:
    nodes = kafka_nodes(three)
    root = three.state_path.resolve() / "kafka-3"
    assert [n.name for n in nodes] == ["kafka-1", "kafka-2", "kafka-3"]
    assert [n.node_id for n in nodes] == [1, 2, 3]
    assert [n.paths.state for n in nodes] == [root / f"node-{i}" for i in (1, 2, 3)]
    assert len({n.paths.pid_file for n in nodes}) == len({n.paths.log for n in nodes}) == 3
    assert len({n.marker for n in nodes}) == 3
    # one broker keeps the layout it always had
    (single,) = kafka_nodes(three.model_copy(update={"brokers": 1}))
    assert single.name == "kafka"
    assert single.paths.state == three.state_path.resolve() / "kafka"


def test_server_properties_of_node_two(three: DevstackSettings) -> None:
    node = kafka_nodes(three)[1]
    props = _props(render_server_properties(three, node))
    assert props["node.id"] == "2"
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29094,CONTROLLER://127.0.0.1:29095"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29094"
    assert props["controller.quorum.voters"] == quorum_voters(kafka_nodes(three))
    assert props["log.dirs"] == str(node.paths.data)
    assert props["auto.create.topics.enable"] == "false"


def test_a_three_node_cluster_replicates_its_internal_topics(three: DevstackSettings) -> None:
    props = _props(render_server_properties(three, kafka_nodes(three)[0]))
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["transaction.state.log.replication.factor"] == "3"
    assert props["transaction.state.log.min.isr"] == "2"
    assert props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"
    single = three.model_copy(update={"brokers": 1})
    props = _props(render_server_properties(single, kafka_nodes(single)[0]))
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["min.insync.replicas"] == "1"


def test_nodes_share_one_cluster_id_kept_on_disk(three: DevstackSettings) -> None:
    first = cluster_id(three)
    assert cluster_id(three) == first
    assert (three.state_path.resolve() / "kafka-3" / "cluster.id").read_text().strip() == first
    other = three.model_copy(update={"brokers": 1})
    assert cluster_id(other) != first


def test_brokers_from_the_environment_and_port_clashes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("VSA_DEVSTACK_BROKERS", "3")
    assert load_settings(DevstackSettings).brokers == 3
    # node 2's client port (19092 + 2) would be node 1's controller port
    monkeypatch.setenv("VSA_DEVSTACK_KAFKA_CONTROLLER_PORT", "19094")
    with pytest.raises(ConfigError, match=r"ports must differ.*kafka_port \(node 2\)=19094"):
        load_settings(DevstackSettings)
    monkeypatch.setenv("VSA_DEVSTACK_KAFKA_CONTROLLER_PORT", "19093")
    monkeypatch.setenv("VSA_DEVSTACK_KAFKA_PORT", "65533")
    with pytest.raises(ConfigError, match="past 65535"):
        load_settings(DevstackSettings)
    monkeypatch.setenv("VSA_DEVSTACK_KAFKA_PORT", "19092")
    monkeypatch.setenv("VSA_DEVSTACK_BROKERS", "0")
    with pytest.raises(ConfigError, match="brokers"):
        load_settings(DevstackSettings)


def test_layouts_found_under_the_state_dir(three: DevstackSettings) -> None:
    state = three.state_path.resolve()
    assert layout_sizes(three) == [3]
    (state / "kafka").mkdir(parents=True)
    (state / "kafka-5").mkdir()
    (state / "kafka-x").mkdir()
    (state / "kafka-99").mkdir()
    assert layout_sizes(three) == [1, 3, 5]


def test_cluster_is_healthy_only_with_every_broker_registered() -> None:
    assert not cluster_health("Local: Broker transport failure", 3).healthy
    partial = cluster_health(ClusterView(frozenset({1, 3}), 4), 3)
    assert not partial.healthy
    assert partial.detail == "2 of 3 brokers registered"
    whole = cluster_health(ClusterView(frozenset({1, 2, 3}), 4), 3)
    assert whole.healthy
    assert whole.detail == "3 broker(s), 4 topic(s)"


def test_status_lists_each_node_under_kafka(tmp_path: Path) -> None:
    nodes = (
        NodeStatus("kafka-1", "127.0.0.1:19092", 41, True, "registered, node.id 1", tmp_path / "1"),
        NodeStatus("kafka-2", "127.0.0.1:19094", None, False, "not running", tmp_path / "2"),
        NodeStatus("kafka-3", "127.0.0.1:19096", 43, True, "registered, node.id 3", tmp_path / "3"),
    )
    kafka = ComponentStatus(
        "kafka", "127.0.0.1:19092,...", False, 41, True, False, "2 of 3 brokers registered", None,
        nodes,
    )  # fmt: skip
    text = format_status(StackStatus((kafka,)))
    lines = text.splitlines()
    assert lines[1].split()[:4] == ["kafka", "127.0.0.1:19092,...", "unhealthy", "41"]
    assert lines[2].split()[:4] == ["kafka-1", "127.0.0.1:19092", "running", "41"]
    assert lines[3].split()[:4] == ["kafka-2", "127.0.0.1:19094", "down", "-"]
    assert lines[4].startswith("  kafka-3")
    assert f"kafka-2 log: {tmp_path / '2'}" in lines


def test_a_dead_pid_file_does_not_count_as_a_running_layout(three: DevstackSettings) -> None:
    from vsa.devstack.kafka import running_pids

    node = kafka_nodes(three)[0]
    node.paths.state.mkdir(parents=True)
    write_pid(node.paths.pid_file, os.getpid())  # alive, but not a java broker
    assert running_pids(kafka_nodes(three)) == {}
    assert node.paths.pid_file.exists()  # only looked at, not removed


def test_cli_takes_a_broker_count() -> None:
    from vsa.cli import build_parser

    assert build_parser().parse_args(["devstack", "up", "--brokers", "3"]).brokers == 3
    assert build_parser().parse_args(["devstack", "status"]).brokers is None


def test_without_a_count_a_running_cluster_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vsa.devstack import kafka as kafka_mod
    from vsa.devstack import stack

    def cluster_runs(nodes: Sequence[KafkaNode]) -> dict[str, int]:
        return {n.name: 100 + n.node_id for n in nodes if n.name.startswith("kafka-")}

    plain = DevstackSettings(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state")
    assert stack._running_layout(plain).brokers == 1  # nothing runs
    (plain.state_path / "kafka-3").mkdir(parents=True)
    monkeypatch.setattr(kafka_mod, "running_pids", cluster_runs)
    assert stack._running_layout(plain).brokers == 3
    with pytest.raises(DevstackError, match=r"already runs here with 3 node\(s\)"):
        stack._refuse_other_kafka(plain)
