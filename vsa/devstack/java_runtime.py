"""A small Java runtime for hosts without Java, linked with ``jlink`` from a JDK's jmods.

The offline bundle (:mod:`vsa.devstack.bundle`) carries one; ``vsa devstack up --bundle`` puts it
in ``<cache>/java-runtime``, where :func:`vsa.devstack.tools.find_java` looks after ``JAVA_HOME``
and before ``PATH``. The module sets were found with ``jdeps`` over the broker's and OpenSearch's
jars (plus the providers they load by name: ``jdk.crypto.ec``, ``jdk.zipfs``) and checked by
running both from the linked runtime.

The runtime is linked without jlink's own compression (``--compress=0``): the bundle's xz then
compresses the whole image at once, 17.6 MB as .tar.xz against 29.5 MB for ``--compress=2``
(Kafka's module set, JDK 17.0.15), at 76 MB instead of 50 MB on disk.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from vsa.devstack.errors import DevstackError
from vsa.devstack.procs import tail_text
from vsa.devstack.tools import MIN_JAVA, parse_java_major

log = logging.getLogger("vsa.devstack")

#: What the Kafka broker (and its storage tool) needs.
KAFKA_MODULES = (
    "java.base", "java.desktop", "java.logging", "java.management", "java.naming",
    "java.security.jgss", "java.security.sasl", "java.sql", "java.xml", "jdk.crypto.ec",
    "jdk.management", "jdk.security.auth", "jdk.unsupported", "jdk.zipfs",
)  # fmt: skip
#: What OpenSearch 2.x with k-NN and lang-painless needs beyond :data:`KAFKA_MODULES`
#: (``jdk.incubator.vector``: Lucene's vectorised k-NN scoring, used when present).
OPENSEARCH_MODULES = ("java.compiler", "java.rmi", "java.scripting", "jdk.incubator.vector")
#: Folder of the unpacked runtime under the devstack cache.
RUNTIME_DIR_NAME = "java-runtime"

JDK_HINT = (
    f"jlink and the jmods/ folder come with a full JDK {MIN_JAVA}+, not with a JRE: on "
    f"Debian/Ubuntu install openjdk-{MIN_JAVA}-jdk-headless (apt-get install -y "
    f"openjdk-{MIN_JAVA}-jdk-headless; on Ubuntu the jmods are in openjdk-{MIN_JAVA}-jmods), or "
    "point --java-home (or JAVA_HOME) at a JDK"
)
_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}
_RELEASE_LINE = re.compile(r'^([A-Z_]+)="?(.*?)"?$')


@dataclass(frozen=True)
class Jdk:
    """A JDK that can link runtimes: its home, jlink, jmods folder, version and platform."""

    home: Path
    jlink: Path
    jmods: Path
    version: str
    os: str
    arch: str


def normalize_arch(arch: str) -> str:
    """One spelling per CPU architecture (``amd64`` -> ``x86_64``, ``arm64`` -> ``aarch64``)."""
    lowered = arch.lower()
    return _ARCH_ALIASES.get(lowered, lowered)


def host_platform() -> tuple[str, str]:
    """``(os, arch)`` of this host, e.g. ``("linux", "x86_64")``."""
    return platform.system().lower(), normalize_arch(platform.machine())


def parse_release(text: str) -> dict[str, str]:
    """The ``KEY="value"`` lines of a JDK's ``release`` file."""
    found = {}
    for line in text.splitlines():
        match = _RELEASE_LINE.match(line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def _jdk_candidates(java_home: Path | None) -> list[Path]:
    homes = [java_home] if java_home is not None else []
    if os.environ.get("JAVA_HOME"):
        homes.append(Path(os.environ["JAVA_HOME"]))
    for tool in ("jlink", "java"):
        found = shutil.which(tool)
        if found:
            homes.append(Path(found).resolve().parent.parent)
    return homes


def find_jdk(java_home: Path | None = None) -> Jdk:
    """The JDK to link with: ``java_home``, else ``JAVA_HOME``, else the one of ``jlink`` or
    ``java`` on PATH. :class:`DevstackError` names the package when none has jlink and jmods."""
    candidates = _jdk_candidates(java_home)
    if java_home is not None:
        candidates = candidates[:1]  # asked for this one: never fall back to another
    for home in candidates:
        if (home / "bin" / "jlink").is_file() and (home / "jmods" / "java.base.jmod").is_file():
            return _describe_jdk(home)
    looked = ", ".join(str(h) for h in candidates) or "nothing (no JAVA_HOME, no java on PATH)"
    raise DevstackError(f"no JDK with jlink and jmods found (looked at {looked}). {JDK_HINT}")


def _describe_jdk(home: Path) -> Jdk:
    try:
        release = parse_release((home / "release").read_text(encoding="utf-8"))
    except OSError as exc:
        raise DevstackError(f"{home} has no readable release file ({exc}). {JDK_HINT}") from exc
    version = release.get("JAVA_VERSION", "")
    major = parse_java_major(f'version "{version}"')
    if major is None or major < MIN_JAVA:
        raise DevstackError(f"{home} is Java {version or 'of unknown version'}. {JDK_HINT}")
    host_os, host_arch = host_platform()
    return Jdk(
        home=home, jlink=home / "bin" / "jlink", jmods=home / "jmods", version=version,
        os=release.get("OS_NAME", host_os).lower(),
        arch=normalize_arch(release.get("OS_ARCH", host_arch)),
    )  # fmt: skip


def link_runtime(jdk: Jdk, modules: tuple[str, ...], dest: Path) -> None:
    """Link a runtime of ``modules`` into ``dest`` (which must not exist yet)."""
    argv = [
        str(jdk.jlink), "--module-path", str(jdk.jmods), "--add-modules", ",".join(modules),
        "--strip-debug", "--compress=0", "--no-header-files", "--no-man-pages",
        "--output", str(dest),
    ]  # fmt: skip
    log.info(
        "linking a Java runtime with jlink", extra={"jdk": jdk.version, "modules": len(modules)}
    )
    started = time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DevstackError(f"cannot run {jdk.jlink} ({exc}). {JDK_HINT}") from exc
    if proc.returncode != 0:
        raise DevstackError(
            f"jlink failed (exit {proc.returncode}):\n{tail_text(proc.stdout + proc.stderr, 20)}"
        )
    log.info("linked the Java runtime", extra={"seconds": round(time.monotonic() - started, 1)})


def runtime_home(cache_dir: Path) -> Path:
    """Where ``up --bundle`` puts the bundled runtime: ``<cache>/java-runtime``."""
    return cache_dir.resolve() / RUNTIME_DIR_NAME


def bundled_java(cache_dir: Path) -> Path | None:
    """``bin/java`` of the bundled runtime in ``cache_dir``, or None when there is none."""
    java = runtime_home(cache_dir) / "bin" / "java"
    return java if java.is_file() else None
