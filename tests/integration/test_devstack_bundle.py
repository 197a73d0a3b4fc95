"""An offline bundle of Java + Kafka, made here and started with ``vsa devstack up --bundle``.

The target side is a fresh one: an empty devstack cache and state folder, ports of its own, no
``java`` on PATH and no JAVA_HOME, so the broker can only run on the bundled runtime. The
building side reuses the configured devstack cache (``VSA_DEVSTACK_CACHE_DIR``, default
``~/.cache/vsa``): the Kafka jars the session fixture fetches there once with mvn are bundled
from it, so this test downloads nothing when they are cached. It links a runtime with the JDK's
jlink (about 15 s) and packs at xz preset 0 (about 15 s) to stay short.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from vsa.devstack import DevstackSettings, down
from vsa.devstack.bundle import BundleOptions, build_bundle
from vsa.devstack.java_runtime import find_jdk
from vsa.devstack.kafka import kafka_paths
from vsa.devstack.procs import read_pid
from vsa.runtime.settings import load_settings

from .test_devstack import _create_topic
from .test_faults_cluster import free_port_block

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _target_env(tmp_path: Path, port: int) -> dict[str, str]:
    """The offline host: its own caches and ports, and a PATH without java."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VSA_DEVSTACK_", "JAVA"))}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.update(
        PATH=str(Path(sys.executable).parent),  # the venv's bin: python, no java
        VSA_DEVSTACK_CACHE_DIR=str(tmp_path / "target-cache"),
        VSA_DEVSTACK_STATE_DIR=str(tmp_path / "target-state"),
        VSA_CACHE_DIR=str(tmp_path / "target-vsa-cache"),
        VSA_DEVSTACK_KAFKA_PORT=str(port),
        VSA_DEVSTACK_KAFKA_CONTROLLER_PORT=str(port + 1),
        VSA_DEVSTACK_OPENSEARCH_PORT=str(port + 2),  # never bound: the bundle has no OpenSearch
        VSA_DEVSTACK_OPENSEARCH_TRANSPORT_PORT=str(port + 3),
        VSA_DEVSTACK_KAFKA_HEAP_MB="256",
    )
    return env


def _round_trip(bootstrap: str, topic: str) -> bytes:
    _create_topic(bootstrap, topic)
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, b"from the bundled broker", key=b"cam-1")
    assert producer.flush(30) == 0
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": topic, "auto.offset.reset": "earliest"}
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                return bytes(message.value() or b"")
        raise AssertionError("no message consumed within 60 s")
    finally:
        consumer.close()


def test_kafka_starts_offline_from_a_bundle_on_its_own_java(tmp_path: Path) -> None:
    try:
        find_jdk()
    except Exception as exc:  # a JRE-only host cannot build the runtime: say why
        pytest.skip(f"no JDK with jlink here: {exc}")
    bundle = tmp_path / "java-kafka.tar"
    options = BundleOptions(opensearch=False, wheels=None, models=(), compression_level=0)
    manifest = build_bundle(bundle, options, load_settings(DevstackSettings))
    assert [part.name for part in manifest.parts] == ["java-runtime", "kafka"]

    port = free_port_block(4)
    env = _target_env(tmp_path, port)
    target = DevstackSettings(
        cache_dir=tmp_path / "target-cache", state_dir=tmp_path / "target-state",
        kafka_port=port, kafka_controller_port=port + 1, opensearch_port=port + 2,
        opensearch_transport_port=port + 3,
    )  # fmt: skip
    command = [sys.executable, "-m", "vsa", "devstack", "up", "--bundle", str(bundle)]
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert manifest.kafka is not None
        assert f"Kafka {manifest.kafka.version}" in proc.stdout
        pid = read_pid(kafka_paths(target).pid_file)
        assert pid is not None
        java = Path(os.readlink(f"/proc/{pid}/exe"))
        assert java == (tmp_path / "target-cache" / "java-runtime" / "bin" / "java").resolve()
        assert _round_trip(f"127.0.0.1:{port}", "bundle-round-trip") == b"from the bundled broker"
    finally:
        stopped = down(settings=target)
    assert len(stopped) == 1
    assert stopped[0].startswith("kafka (pid")
