"""The offline bundle's manifest and checks, on small bundles made here (no network, no Java)."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from vsa.devstack import DevstackError, DevstackSettings
from vsa.devstack.bundle import Installed, install_bundle
from vsa.devstack.bundle_archive import PartSource, pack_part, write_bundle
from vsa.devstack.bundle_manifest import (
    MANIFEST_NAME,
    BundleManifest,
    BundlePart,
    JavaInfo,
    KafkaInfo,
    Platform,
    WheelsInfo,
    wheel_notes,
)
from vsa.devstack.java_runtime import host_platform, normalize_arch, parse_release
from vsa.devstack.wheels import compatible_platforms, platform_arch

JAR_ENTRY = "org/example/Main.class"
JAR_BYTES = b"\xca\xfe\xba\xbe" + b"class body " * 500


@pytest.fixture(autouse=True)
def _no_stack_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A test stack's VSA_DEVSTACK_* stays out; the vsa cache is the test's own."""
    for name in [n for n in os.environ if n.startswith("VSA_DEVSTACK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("VSA_CACHE_DIR", str(tmp_path / "vsa-cache"))


def _settings(tmp_path: Path) -> DevstackSettings:
    return DevstackSettings(cache_dir=tmp_path / "target", state_dir=tmp_path / "state")


def _host() -> Platform:
    os_name, arch = host_platform()
    return Platform(os=os_name, arch=arch)


def _kafka_home(tmp_path: Path) -> Path:
    """A stand-in for the cached Kafka: a marker and one deflated jar."""
    home = tmp_path / "src" / "kafka-3.9.2"
    (home / "libs").mkdir(parents=True)
    (home / ".vsa-complete").write_text("Kafka 3.9.2\n")
    with zipfile.ZipFile(home / "libs" / "app.jar", "w", zipfile.ZIP_DEFLATED) as jar:
        jar.writestr(JAR_ENTRY, JAR_BYTES)
    return home


def _make_bundle(
    tmp_path: Path, *, platform: Platform | None = None, kafka_version: str = "3.9.2"
) -> Path:
    home = _kafka_home(tmp_path)
    model = tmp_path / "src" / "models" / "tiny"
    model.mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"\x01\x02" * 1000)
    out = tmp_path / "parts"
    out.mkdir()
    sources = [
        (PartSource("kafka", "devstack-cache", ((home, home.name),)), "xz"),
        (PartSource("models", "vsa-cache", ((model, "models/tiny"),)), "gz"),
    ]
    packed = [pack_part(src, out, kind, 0) for src, kind in sources]  # type: ignore[arg-type]
    java = None
    if platform is not None:
        java = JavaInfo(version="17.0.15", modules=("java.base",), platform=platform)
    manifest = BundleManifest(
        created="2026-12-08T00:00:00+00:00", vsa_version="0.1.0", java=java,
        kafka=KafkaInfo(version=kafka_version, scala_version="2.13"), models=("tiny",),
        parts=tuple(part for part, _ in packed),
    )  # fmt: skip
    bundle = tmp_path / "bundle.tar"
    write_bundle(bundle, manifest, [file for _, file in packed])
    return bundle


def _rewrite(bundle: Path, change_member: str | None = None, extra: str | None = None) -> None:
    """Copy the bundle's members, flipping one byte of ``change_member``, adding ``extra``."""
    members = []
    with tarfile.open(bundle) as tar:
        for member in tar.getmembers():
            data = bytearray(tar.extractfile(member).read())  # type: ignore[union-attr]
            if member.name == change_member:
                data[len(data) // 2] ^= 0xFF
            members.append((member.name, bytes(data)))
    if extra is not None:
        members.append((extra, b"surprise"))
    with tarfile.open(bundle, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_a_bundle_unpacks_into_both_caches(tmp_path: Path) -> None:
    bundle = _make_bundle(tmp_path, platform=_host())
    installed = install_bundle(bundle, _settings(tmp_path))
    home = tmp_path / "target" / "kafka-3.9.2"
    assert (home / ".vsa-complete").read_text() == "Kafka 3.9.2\n"
    with zipfile.ZipFile(home / "libs" / "app.jar") as jar:
        # the same entry, byte for byte, now stored so that xz compresses across jars
        assert jar.read(JAR_ENTRY) == JAR_BYTES
        assert jar.getinfo(JAR_ENTRY).compress_type == zipfile.ZIP_STORED
    assert (tmp_path / "vsa-cache" / "models" / "tiny" / "weights.bin").stat().st_size == 2000
    assert installed.manifest.kafka == KafkaInfo(version="3.9.2", scala_version="2.13")
    assert installed.pip_command() is None  # no wheels in this bundle


def test_a_second_install_replaces_the_entries(tmp_path: Path) -> None:
    bundle = _make_bundle(tmp_path)
    settings = _settings(tmp_path)
    install_bundle(bundle, settings)
    stale = tmp_path / "target" / "kafka-3.9.2" / "libs" / "old.jar"
    stale.write_bytes(b"left from before")
    install_bundle(bundle, settings)
    assert not stale.exists()
    assert (tmp_path / "target" / "kafka-3.9.2" / "libs" / "app.jar").is_file()


def test_a_tampered_part_is_rejected_before_anything_is_unpacked(tmp_path: Path) -> None:
    bundle = _make_bundle(tmp_path)
    _rewrite(bundle, change_member="parts/models.tar.gz")
    with pytest.raises(DevstackError, match=r"part models .* is damaged or altered"):
        install_bundle(bundle, _settings(tmp_path))
    assert not (tmp_path / "target" / "kafka-3.9.2").exists()  # the intact part neither
    assert not (tmp_path / "vsa-cache" / "models").exists()


def test_a_member_the_manifest_does_not_list_is_rejected(tmp_path: Path) -> None:
    bundle = _make_bundle(tmp_path)
    _rewrite(bundle, extra="parts/extra.tar")
    with pytest.raises(DevstackError, match="does not list"):
        install_bundle(bundle, _settings(tmp_path))
    assert not (tmp_path / "target").exists()


def test_a_bundle_for_another_platform_is_rejected(tmp_path: Path) -> None:
    host = _host()
    other = Platform(os=host.os, arch="aarch64" if host.arch != "aarch64" else "x86_64")
    bundle = _make_bundle(tmp_path, platform=other)
    with pytest.raises(DevstackError) as caught:
        install_bundle(bundle, _settings(tmp_path))
    assert f"this bundle is for {other}" in str(caught.value)
    assert f"this host is {host}" in str(caught.value)
    assert not (tmp_path / "target").exists()


def test_a_bundle_of_another_kafka_version_names_the_setting(tmp_path: Path) -> None:
    bundle = _make_bundle(tmp_path, kafka_version="3.8.1")
    with pytest.raises(
        DevstackError, match=r"carries Kafka 3\.8\.1 but VSA_DEVSTACK_KAFKA_VERSION"
    ):
        install_bundle(bundle, _settings(tmp_path))


def test_a_file_that_is_not_a_bundle_says_so(tmp_path: Path) -> None:
    not_tar = tmp_path / "notes.txt"
    not_tar.write_text("hello")
    with pytest.raises(DevstackError, match="not a vsa bundle"):
        install_bundle(not_tar, _settings(tmp_path))
    plain = tmp_path / "plain.tar"
    with tarfile.open(plain, "w") as tar:
        tar.addfile(tarfile.TarInfo("README"), io.BytesIO(b""))
    with pytest.raises(DevstackError, match="does not start with a manifest"):
        install_bundle(plain, _settings(tmp_path))


def test_a_newer_format_is_refused(tmp_path: Path) -> None:
    bundle = _make_bundle(tmp_path)
    with tarfile.open(bundle) as tar:
        manifest = BundleManifest.model_validate_json(tar.extractfile(MANIFEST_NAME).read())  # type: ignore[union-attr]
    newer = manifest.model_copy(update={"format_version": 2})
    raw = newer.model_dump_json().encode()
    rewritten = tmp_path / "newer.tar"
    with tarfile.open(bundle) as src, tarfile.open(rewritten, "w") as dst:
        info = tarfile.TarInfo(MANIFEST_NAME)
        info.size = len(raw)
        dst.addfile(info, io.BytesIO(raw))
        for member in src.getmembers()[1:]:
            dst.addfile(member, src.extractfile(member))
    with pytest.raises(DevstackError, match="format version 2"):
        install_bundle(rewritten, _settings(tmp_path))


@pytest.mark.parametrize("entry", ["../escape", "/etc/passwd", "a/../../b", ""])
def test_entries_must_be_plain_relative_paths(entry: str) -> None:
    with pytest.raises(ValueError, match="relative path"):
        BundlePart(
            name="x", member="parts/x.tar", compression="none", sha256="0" * 64, size=0,
            root="vsa-cache", entries=(entry,), files=0, unpacked_bytes=0,
        )  # fmt: skip


def test_manylinux_tags_expand_to_every_older_glibc() -> None:
    tags = compatible_platforms("manylinux_2_28_x86_64")
    assert tags[0] == "manylinux_2_28_x86_64"
    assert tags[-1] == "manylinux1_x86_64"
    for tag in ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux2010_x86_64"):
        assert tag in tags
    assert tags.index("manylinux2014_x86_64") == tags.index("manylinux_2_17_x86_64") + 1
    assert "manylinux_2_29_x86_64" not in tags
    assert compatible_platforms("manylinux2014_aarch64")[0] == "manylinux_2_17_aarch64"
    assert compatible_platforms("macosx_11_0_arm64") == ("macosx_11_0_arm64",)
    assert platform_arch("manylinux_2_28_x86_64") == "x86_64"
    assert platform_arch("manylinux2014_aarch64") == "aarch64"


def test_wheel_notes_name_another_python_or_cpu() -> None:
    wheels = WheelsInfo(
        python="3.12", platform="manylinux_2_28_x86_64", project="vsa-0.1.0-py3-none-any.whl",
        requirement="vsa", count=3,
    )  # fmt: skip
    manifest = BundleManifest(
        created="2026-12-08T00:00:00+00:00", vsa_version="0.1.0", wheels=wheels, parts=()
    )
    linux_x86 = Platform(os="linux", arch="x86_64")
    assert wheel_notes(manifest, "3.12", linux_x86) == []
    assert "install them with a Python 3.12" in wheel_notes(manifest, "3.11", linux_x86)[0]
    assert (
        "this host is linux-aarch64"
        in wheel_notes(manifest, "3.12", Platform(os="linux", arch="aarch64"))[0]
    )
    installed = Installed(manifest=manifest, wheels_dir=Path("/cache/wheels"), notes=())
    assert installed.pip_command() == (
        "python3.12 -m pip install --no-index --find-links /cache/wheels vsa"
    )


def test_release_file_and_arch_names() -> None:
    release = parse_release('JAVA_VERSION="17.0.15"\nOS_NAME="Linux"\nOS_ARCH="amd64"\n')
    assert release == {"JAVA_VERSION": "17.0.15", "OS_NAME": "Linux", "OS_ARCH": "amd64"}
    assert normalize_arch(release["OS_ARCH"]) == "x86_64"
    assert normalize_arch("arm64") == "aarch64"
