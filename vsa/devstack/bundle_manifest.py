"""The manifest of an offline bundle: what it holds, for which platform, and every part's hash.

A bundle is an uncompressed tar: ``manifest.json`` first, then one member per part
(``parts/<name>.tar.xz``), each a compressed tar of folders or files that go under one root on
the target: the devstack cache (Java runtime, Kafka jars, OpenSearch artifacts, wheels) or the
vsa cache (models, the sample clip). The manifest is checked before anything is unpacked: every
member listed and no other, each part's size and SHA-256, and the platform of its native parts.
The hashes catch a damaged or altered part; they are not a signature (whoever can change a part
can change the manifest too): move bundles over a channel you trust.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vsa.devstack.errors import DevstackError

FORMAT: Final = "vsa-devstack-bundle"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
#: The models and data a bundle may carry (``--models``), and those it carries by default.
MODEL_NAMES = ("yolov3-tiny", "mobilenetv2-embedder", "vtest", "yolov8-fall")
DEFAULT_MODELS = ("yolov3-tiny", "mobilenetv2-embedder", "vtest")

#: Where a part's entries go on the target: the devstack cache (``VSA_DEVSTACK_CACHE_DIR``) or the
#: vsa cache of models and data (``VSA_CACHE_DIR``); both default to ``~/.cache/vsa``.
PartRoot = Literal["devstack-cache", "vsa-cache"]
Compression = Literal["xz", "gz", "none"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Platform(_Model):
    """Operating system and CPU architecture (``linux``, ``x86_64``)."""

    os: str = Field(min_length=1)
    arch: str = Field(min_length=1)

    def __str__(self) -> str:
        return f"{self.os}-{self.arch}"


def _relative(path: str) -> str:
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or str(pure) != path:
        raise ValueError(f"{path!r} is not a plain relative path")
    return path


class BundlePart(_Model):
    """One member of the bundle: a compressed tar whose top-level ``entries`` go under ``root``."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    member: str
    compression: Compression
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0, description="Bytes of the member in the bundle.")
    root: PartRoot
    entries: tuple[str, ...] = Field(min_length=1)
    files: int = Field(ge=0, description="Files the part unpacks to.")
    unpacked_bytes: int = Field(ge=0)

    @field_validator("member")
    @classmethod
    def _member_relative(cls, value: str) -> str:
        return _relative(value)

    @field_validator("entries")
    @classmethod
    def _entries_relative(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_relative(entry) for entry in value)


class JavaInfo(_Model):
    """The jlink'd runtime: its version, modules and the platform it runs on."""

    version: str
    modules: tuple[str, ...]
    platform: Platform


class KafkaInfo(_Model):
    version: str
    scala_version: str


class OpenSearchInfo(_Model):
    version: str
    knn_version: str


class WheelsInfo(_Model):
    """The project's wheel and its dependencies', for one Python version and platform."""

    python: str = Field(pattern=r"^3\.\d+$")
    platform: str = Field(description="The platform tag asked for (manylinux_2_28_x86_64).")
    project: str = Field(description="File name of the project's own wheel.")
    requirement: str = Field(description="What to pip install from the folder (vsa).")
    count: int = Field(ge=1)
    built_here: tuple[str, ...] = Field(
        (), description="Wheels built on the bundling host from sdists (no wheel on PyPI)."
    )


class BundleManifest(_Model):
    """Everything ``up --bundle`` needs to check a bundle before unpacking it."""

    format: Literal["vsa-devstack-bundle"] = FORMAT
    format_version: int = FORMAT_VERSION
    created: str
    vsa_version: str
    java: JavaInfo | None = None
    kafka: KafkaInfo | None = None
    opensearch: OpenSearchInfo | None = None
    wheels: WheelsInfo | None = None
    models: tuple[str, ...] = ()
    parts: tuple[BundlePart, ...]

    @model_validator(mode="after")
    def _parts_distinct(self) -> BundleManifest:
        for attr in ("name", "member"):
            values = [getattr(part, attr) for part in self.parts]
            if len(set(values)) != len(values):
                raise ValueError(f"two parts have the same {attr}")
        if MANIFEST_NAME in (part.member for part in self.parts):
            raise ValueError(f"a part cannot be named {MANIFEST_NAME}")
        return self

    def part(self, name: str) -> BundlePart | None:
        """The part called ``name``, or None."""
        return next((p for p in self.parts if p.name == name), None)

    def summary(self) -> list[str]:
        """One line per thing the bundle carries, for people."""
        lines = []
        if self.java is not None:
            lines.append(f"Java runtime {self.java.version} for {self.java.platform}")
        if self.kafka is not None:
            lines.append(f"Kafka {self.kafka.version} (Scala {self.kafka.scala_version})")
        if self.opensearch is not None:
            lines.append(
                f"OpenSearch {self.opensearch.version} + k-NN {self.opensearch.knn_version}"
            )
        if self.wheels is not None:
            w = self.wheels
            lines.append(f"{w.count} wheels for Python {w.python} on {w.platform} ({w.project})")
        if self.models:
            lines.append("models and data: " + ", ".join(self.models))
        return lines


def parse_manifest(raw: bytes) -> BundleManifest:
    """The manifest from its JSON; :class:`DevstackError` when it is not one of ours."""
    try:
        return BundleManifest.model_validate_json(raw)
    except ValueError as exc:
        raise DevstackError(f"the bundle's {MANIFEST_NAME} is not valid: {exc}") from None


def check_format(manifest: BundleManifest) -> None:
    """Refuse a bundle written by a newer vsa in a format this one does not know."""
    if manifest.format_version != FORMAT_VERSION:
        raise DevstackError(
            f"the bundle has format version {manifest.format_version} (made by vsa "
            f"{manifest.vsa_version}); this vsa reads version {FORMAT_VERSION} only"
        )


def check_platform(manifest: BundleManifest, host: Platform) -> None:
    """Refuse a bundle whose Java runtime is for another OS or CPU than ``host``."""
    if manifest.java is None or manifest.java.platform == host:
        return
    raise DevstackError(
        f"this bundle is for {manifest.java.platform} (its Java runtime) but this host is "
        f"{host}: make the bundle on a {host} machine, or one without Java (--no-java) for a "
        "host that has Java 17+"
    )


def check_part_integrity(part: BundlePart, size: int, sha256: str) -> None:
    """Refuse a part whose size or SHA-256 differs from the manifest's."""
    if size != part.size or sha256 != part.sha256:
        raise DevstackError(
            f"part {part.name} ({part.member}) is damaged or altered: {size} bytes with SHA-256 "
            f"{sha256}, the manifest says {part.size} bytes with {part.sha256}; nothing was "
            "unpacked. Copy the bundle again"
        )


def wheel_notes(manifest: BundleManifest, python: str, host: Platform) -> list[str]:
    """Warnings when the bundle's wheels are for another Python or CPU than this host's."""
    wheels = manifest.wheels
    if wheels is None:
        return []
    notes = []
    if wheels.python != python:
        notes.append(
            f"the wheels are for Python {wheels.python}, this interpreter is {python}: "
            f"install them with a Python {wheels.python}"
        )
    if not wheels.platform.endswith(host.arch) and wheels.platform != "any":
        notes.append(f"the wheels are for {wheels.platform}, this host is {host}")
    return notes
