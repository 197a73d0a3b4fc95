"""Config rendering and bookkeeping of the local stack, without starting or fetching anything."""

from __future__ import annotations

import base64
import os
import socket
from pathlib import Path

import pytest

from vsa.devstack import maven, stack
from vsa.devstack.errors import DevstackError
from vsa.devstack.kafka import kafka_nodes, new_cluster_id, render_server_properties
from vsa.devstack.maven import MARKER, MavenDep, is_complete, maven_fetch, render_pom
from vsa.devstack.opensearch import render_painless_descriptor
from vsa.devstack.procs import owned_pid, port_in_use, read_pid, tail_file, write_pid
from vsa.devstack.settings import DevstackSettings
from vsa.devstack.stack import ComponentStatus, StackInfo, StackStatus, format_status
from vsa.devstack.tools import parse_java_major
from vsa.runtime.settings import MAX_MESSAGE_BYTES, ConfigError, load_settings


def _props(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


@pytest.fixture(autouse=True)
def _without_devstack_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test stack's VSA_DEVSTACK_* (hstack env.sh) stays out: these tests set what they read."""
    for name in [n for n in os.environ if n.startswith("VSA_DEVSTACK_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def settings(tmp_path: Path) -> DevstackSettings:
    return DevstackSettings(
        kafka_port=29092,
        kafka_controller_port=29093,
        cache_dir=tmp_path / "cache",
        state_dir=tmp_path / "state",
    )


def test_server_properties_allow_frames_of_max_message_bytes(settings: DevstackSettings) -> None:
    props = _props(render_server_properties(settings, kafka_nodes(settings)[0]))
    assert int(props["message.max.bytes"]) == MAX_MESSAGE_BYTES
    assert int(props["replica.fetch.max.bytes"]) == MAX_MESSAGE_BYTES
    assert int(props["socket.request.max.bytes"]) >= 2 * MAX_MESSAGE_BYTES


def test_server_properties_listen_on_loopback_only(settings: DevstackSettings) -> None:
    props = _props(render_server_properties(settings, kafka_nodes(settings)[0]))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:29093"
    assert props["process.roles"] == "broker,controller"


def test_server_properties_for_a_single_test_node(settings: DevstackSettings) -> None:
    props = _props(render_server_properties(settings, kafka_nodes(settings)[0]))
    assert props["auto.create.topics.enable"] == "false"
    assert props["log.dirs"] == str(settings.state_path.resolve() / "kafka" / "data")
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["num.partitions"] == "1"


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VSA_DEVSTACK_KAFKA_PORT", "29092")
    monkeypatch.setenv("VSA_DEVSTACK_OPENSEARCH_HEAP_MB", "1024")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    loaded = load_settings(DevstackSettings)
    assert loaded.kafka_port == 29092
    assert loaded.opensearch_heap_mb == 1024
    assert loaded.cache_dir == tmp_path / "vsa"
    assert loaded.state_path == tmp_path / "vsa" / "state"


def test_settings_refuse_bad_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSA_DEVSTACK_KAFKA_PORT", "80")
    with pytest.raises(ConfigError, match="kafka_port"):
        load_settings(DevstackSettings)
    monkeypatch.setenv("VSA_DEVSTACK_KAFKA_PORT", "19200")
    with pytest.raises(ConfigError, match="ports must differ"):
        load_settings(DevstackSettings)


def test_opensearch_dir_defaults(settings: DevstackSettings) -> None:
    root = os.geteuid() == 0
    expected = Path("/var/lib/vsa-devstack") if root else settings.state_path / "opensearch"
    assert settings.opensearch_path == expected
    explicit = settings.model_copy(update={"opensearch_dir": Path("/srv/os")})
    assert explicit.opensearch_path == Path("/srv/os")
    assert settings.knn_version == "2.19.1.0"


def test_pom_lists_exactly_the_requested_artifacts() -> None:
    pom = render_pom(
        [
            MavenDep(
                "org.opensearch.plugin", "opensearch-knn", "2.19.1.0", "zip", exclude_all=True
            ),
            MavenDep("org.opensearch.plugin", "lang-painless", "2.19.1", exclude_groups=("a.b",)),
        ]
    )
    assert (
        "<artifactId>opensearch-knn</artifactId><version>2.19.1.0</version><type>zip</type>" in pom
    )
    assert "<exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion>" in pom
    assert "<exclusion><groupId>a.b</groupId><artifactId>*</artifactId></exclusion>" in pom


def test_painless_descriptor_matches_the_version() -> None:
    props = _props(render_painless_descriptor("2.19.1"))
    assert props["name"] == "lang-painless"
    assert props["version"] == props["opensearch.version"] == "2.19.1"
    assert props["classname"] == "org.opensearch.painless.PainlessPlugin"


def test_cluster_id_is_16_bytes_base64url() -> None:
    cluster_id = new_cluster_id()
    assert len(cluster_id) == 22
    assert not cluster_id.startswith("-")
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("garbage", None),
    ],
)
def test_java_major_version(output: str, major: int | None) -> None:
    assert parse_java_major(output) == major


def test_fetch_is_skipped_when_complete_and_redone_when_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []

    def fake_mvn(pom: Path, output_dir: Path, what: str, timeout_s: float) -> None:
        calls.append(output_dir)
        (output_dir / "kafka.jar").write_bytes(b"jar")

    monkeypatch.setattr(maven, "_run_mvn", fake_mvn)
    dest = tmp_path / "kafka-3.9.2"
    (dest / "libs").mkdir(parents=True)  # an interrupted earlier download: no marker
    assert not is_complete(dest)
    maven_fetch("Kafka", [MavenDep("g", "a", "1")], dest, "libs", 10)
    assert (dest / MARKER).is_file()
    assert (dest / "libs" / "kafka.jar").read_bytes() == b"jar"
    assert not (dest / ".pom").exists()
    maven_fetch("Kafka", [MavenDep("g", "a", "1")], dest, "libs", 10)
    assert len(calls) == 1


def test_missing_mvn_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DevstackError, match="apt-get install -y maven"):
        maven_fetch("Kafka", [MavenDep("g", "a", "1")], tmp_path / "k", "libs", 10)


def test_pid_file_of_a_foreign_process_is_stale(tmp_path: Path) -> None:
    pid_file = tmp_path / "kafka.pid"
    write_pid(pid_file, os.getpid())  # alive, but python, not our java broker
    assert read_pid(pid_file) == os.getpid()
    assert owned_pid(pid_file, "/state/kafka/server.properties") is None
    assert not pid_file.exists()


def test_port_in_use() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert port_in_use(port)
    assert not port_in_use(port)


def test_tail_file(tmp_path: Path) -> None:
    log = tmp_path / "kafka.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail_file(log, 3) == "line 97\nline 98\nline 99"
    assert "no log" in tail_file(tmp_path / "missing.log")


def test_external_endpoints_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("OPENSEARCH_URL", raising=False)
    assert stack.external_address("kafka") is None
    assert stack.external_address("opensearch") is None
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker-1:9092,broker-2:9092")
    monkeypatch.setenv("OPENSEARCH_URL", "https://search.example:9200/")
    assert stack.external_address("kafka") == "broker-1:9092,broker-2:9092"
    assert stack.external_address("opensearch") == "https://search.example:9200"


def test_format_status_table() -> None:
    report = StackStatus(
        (
            ComponentStatus("kafka", "127.0.0.1:19092", False, 41, True, True, "1 broker(s)", None),
            ComponentStatus(
                "opensearch", "http://os:9200", True, None, False, False, "refused", None
            ),
        )
    )
    text = format_status(report)
    assert not report.healthy
    lines = text.splitlines()
    assert lines[1].split()[:4] == ["kafka", "127.0.0.1:19092", "healthy", "41"]
    assert "unhealthy (external)" in lines[2]
    assert lines[2].endswith("refused")


def test_stack_info_without_a_part_says_so() -> None:
    info = StackInfo(kafka=None, opensearch=None)
    assert info.started == ()
    assert not info.kafka_external
    with pytest.raises(DevstackError, match="Kafka was not brought up"):
        _ = info.kafka_bootstrap


def test_opensearch_node_says_it_has_no_native_knn_engines(settings: DevstackSettings) -> None:
    """The indexer refuses faiss/nmslib on nodes with this attribute (both sides agree)."""
    from vsa.devstack.opensearch import KNN_NATIVE_LIBS_ATTR, _node_argv, opensearch_paths
    from vsa.services.indexer.store import KNN_NATIVE_LIBS_ATTR as INDEXER_ATTR

    argv = _node_argv(settings, opensearch_paths(settings))
    assert KNN_NATIVE_LIBS_ATTR == INDEXER_ATTR
    assert f"node.attr.{KNN_NATIVE_LIBS_ATTR}=absent" in argv
