"""Finding the external programs the stack needs: a Java 17+ runtime and Maven."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vsa.devstack.errors import DevstackError

MIN_JAVA = 17

_JAVA_HINT = (
    f"Java {MIN_JAVA}+ is required to run Kafka and OpenSearch: install openjdk-17-jre-headless "
    "(apt-get install -y openjdk-17-jre-headless), point JAVA_HOME at a JDK/JRE 17+, or, on a "
    "host without network, unpack an offline bundle (vsa devstack up --bundle FILE)"
)
_MVN_HINT = (
    "Maven is required to fetch Kafka and OpenSearch from Maven Central (once; cached): "
    "install it (apt-get install -y maven) or put mvn on PATH"
)
_VERSION_RE = re.compile(r'version "(\d+)(?:\.(\d+))?')


@dataclass(frozen=True)
class Java:
    """A Java runtime: ``executable`` (bin/java, symlinks resolved), ``home`` and major version."""

    executable: Path
    home: Path
    major: int


def _java_candidate(bundled: Path | None) -> Path | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return Path(java_home) / "bin" / "java"
    if bundled is not None:
        return bundled
    found = shutil.which("java")
    return Path(found) if found else None


def parse_java_major(version_output: str) -> int | None:
    """Major version from ``java -version`` output (``1.8.0`` -> 8, ``17.0.15`` -> 17)."""
    match = _VERSION_RE.search(version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major


def find_java(bundled: Path | None = None) -> Java:
    """The Java runtime from ``JAVA_HOME``, else ``bundled`` (the ``bin/java`` of an offline
    bundle's runtime, which a person who unpacked one wants used), else ``PATH``;
    :class:`DevstackError` if absent or older than 17."""
    candidate = _java_candidate(bundled)
    if candidate is None:
        raise DevstackError(f"no java found on PATH or in JAVA_HOME. {_JAVA_HINT}")
    executable = candidate.resolve()
    try:
        proc = subprocess.run(
            [str(executable), "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DevstackError(f"cannot run {executable} -version ({exc}). {_JAVA_HINT}") from exc
    major = parse_java_major(proc.stderr + proc.stdout)
    if major is None or major < MIN_JAVA:
        found = (proc.stderr + proc.stdout).strip().splitlines()[:1]
        raise DevstackError(f"{executable} is {found or 'unknown'}. {_JAVA_HINT}")
    return Java(executable=executable, home=executable.parent.parent, major=major)


def find_mvn() -> Path:
    """Path of ``mvn``; :class:`DevstackError` with the install command when it is missing."""
    found = shutil.which("mvn")
    if found is None:
        raise DevstackError(f"mvn not found on PATH. {_MVN_HINT}")
    return Path(found)
