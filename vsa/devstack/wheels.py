"""The project and its dependencies as wheels for a named Python version and platform.

``pip wheel --no-deps`` builds the project's own wheel from the source checkout; ``pip download
--only-binary=:all:`` then fetches the wheels of everything it depends on for the target
(``--python-version``, ``--platform``), which need not be this host's. Some dependencies publish
only an sdist (faust-streaming 0.15.3): those are built into a wheel here with a Python of the
target version (``build_python``; pip names the missing one, it is built, and the download is
tried again). Such a wheel is tagged ``linux_<arch>`` and is linked against this host's glibc.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import vsa
from vsa.devstack.bundle_manifest import WheelsInfo
from vsa.devstack.errors import DevstackError
from vsa.devstack.java_runtime import normalize_arch

log = logging.getLogger("vsa.devstack")

PIP_TIMEOUT_S = 7200
#: sdist-only dependencies built here before giving up (each needs a download round).
MAX_SDIST_BUILDS = 10
_MANYLINUX = re.compile(r"^manylinux_2_(\d+)_([a-z0-9_]+)$")
#: The legacy manylinux names and the glibc 2.x minor version each stands for (PEP 600).
_LEGACY_MANYLINUX = {"manylinux2014": 17, "manylinux2010": 12, "manylinux1": 5}
_NO_MATCH = re.compile(r"No matching distribution found for (\S+)")
_PIP_PROGRESS = ("Collecting", "Saved", "Downloading", "Processing", "Building")


@dataclass(frozen=True)
class WheelTarget:
    """Which interpreter the wheels are for, and how to reach the package index."""

    python: str  # "3.12"
    platform: str  # "manylinux_2_28_x86_64"
    pip_options: tuple[str, ...] = ()  # e.g. ("--index-url", "https://...")
    build_python: Path | None = None  # a Python of version ``python`` for sdist-only packages


def default_python() -> str:
    """``major.minor`` of the running interpreter."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def default_platform() -> str:
    """This host's platform tag: ``manylinux_2_<glibc minor>_<arch>`` on glibc Linux."""
    arch = normalize_arch(platform.machine())
    libc, version = platform.libc_ver()
    parts = version.split(".")
    if platform.system() != "Linux" or libc != "glibc" or len(parts) < 2 or parts[0] != "2":
        return f"{platform.system().lower()}_{arch}"
    return f"manylinux_2_{parts[1]}_{arch}"


def compatible_platforms(tag: str) -> tuple[str, ...]:
    """Every platform tag a host of ``tag`` runs, most specific first (pip takes ``--platform``
    literally). ``manylinux_2_28_x86_64`` gives manylinux_2_28 down to manylinux_2_5 with the
    legacy names manylinux2014 (2.17), manylinux2010 (2.12) and manylinux1 (2.5) in between;
    ``manylinux2014_x86_64`` is read as manylinux_2_17. Other tags stand alone."""
    for legacy, minor in _LEGACY_MANYLINUX.items():
        if tag.startswith(legacy + "_"):
            tag = f"manylinux_2_{minor}_{tag.removeprefix(legacy + '_')}"
    match = _MANYLINUX.match(tag)
    if match is None:
        return (tag,)
    newest, arch = int(match.group(1)), match.group(2)
    tags = []
    for minor in range(newest, 4, -1):
        tags.append(f"manylinux_2_{minor}_{arch}")
        tags += [f"{name}_{arch}" for name, m in _LEGACY_MANYLINUX.items() if m == minor]
    return tuple(tags)


def platform_arch(tag: str) -> str:
    """The CPU architecture a platform tag names (``manylinux_2_28_x86_64`` -> ``x86_64``)."""
    match = _MANYLINUX.match(compatible_platforms(tag)[0])
    return match.group(2) if match else tag.split("_", 1)[-1]


def project_root() -> Path:
    """The source checkout this vsa runs from (its ``pyproject.toml``)."""
    root = Path(vsa.__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        raise DevstackError(
            f"the project's wheel is built from a source checkout, and this vsa is installed at "
            f"{root} without one: run `vsa devstack bundle` from a checkout, or leave the "
            "wheels out (--no-wheels)"
        )
    return root


def _run_pip(argv: Sequence[str], what: str) -> tuple[int, str]:
    """Run pip, logging its progress lines; ``(exit status, last 40 lines of output)``."""
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_PROGRESS_BAR": "off"}
    tail: deque[str] = deque(maxlen=40)
    log.info("%s: %s", what, " ".join(argv[2:5]) + " ...")
    with subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip())
            if line.lstrip().startswith(_PIP_PROGRESS):
                log.info("pip: %s", line.strip()[:160])
        try:
            code = proc.wait(PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = -9
    return code, "\n".join(tail)


def build_project_wheel(dest: Path, target: WheelTarget) -> Path:
    """``pip wheel --no-deps`` of the checkout into ``dest``; the wheel's path."""
    before = set(dest.glob("*.whl"))
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dest)]
    code, output = _run_pip([*argv, *target.pip_options, str(project_root())], "building vsa")
    built = sorted(set(dest.glob("*.whl")) - before)
    if code != 0 or len(built) != 1:
        raise DevstackError(f"building the project's wheel failed (exit {code}):\n{output}")
    return built[0]


def _build_python(target: WheelTarget) -> Path:
    candidates = [target.build_python] if target.build_python else []
    if target.python == default_python():
        candidates.append(Path(sys.executable))
    if found := shutil.which(f"python{target.python}"):
        candidates.append(Path(found))
    for python in candidates:
        probe = [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]
        proc = subprocess.run(probe, capture_output=True, text=True, check=False, timeout=60)
        if proc.returncode == 0 and proc.stdout.strip() == target.python:
            return python
    raise DevstackError(
        f"no Python {target.python} found here to build the wheel of a dependency that has "
        f"only an sdist: pass --build-python <path of a python{target.python}>"
    )


def _build_from_sdist(requirement: str, dest: Path, target: WheelTarget) -> None:
    python = _build_python(target)
    argv = [str(python), "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dest)]
    code, output = _run_pip([*argv, *target.pip_options, requirement], f"building {requirement}")
    if code != 0:
        raise DevstackError(f"building a wheel of {requirement} failed (exit {code}):\n{output}")


def download_wheels(project_wheel: Path, dest: Path, target: WheelTarget) -> tuple[str, ...]:
    """The wheels ``project_wheel`` needs for ``target`` into ``dest``; the requirements that
    had to be built here from sdists."""
    arch = platform_arch(target.platform)
    platforms = [*compatible_platforms(target.platform), f"linux_{arch}"]
    argv = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--dest", str(dest)]
    argv += ["--find-links", str(dest), "--python-version", target.python]
    argv += [arg for tag in platforms for arg in ("--platform", tag)]
    argv += [*target.pip_options, str(project_wheel)]
    built: list[str] = []
    for _ in range(MAX_SDIST_BUILDS + 1):
        code, output = _run_pip(argv, f"downloading wheels for Python {target.python}")
        if code == 0:
            return tuple(built)
        missing = _NO_MATCH.search(output)
        if missing is None or missing.group(1) in built:
            raise DevstackError(f"pip download failed (exit {code}):\n{output}")
        log.info("no wheel on the index; building it here", extra={"package": missing.group(1)})
        _build_from_sdist(missing.group(1), dest, target)
        built.append(missing.group(1))
    raise DevstackError(f"more than {MAX_SDIST_BUILDS} dependencies have no wheel: {built}")


def collect_wheels(dest: Path, target: WheelTarget) -> WheelsInfo:
    """The project's wheel and every dependency's in ``dest`` (created empty)."""
    dest.mkdir(parents=True)
    project = build_project_wheel(dest, target)
    built = download_wheels(project, dest, target)
    return WheelsInfo(
        python=target.python, platform=target.platform, project=project.name,
        requirement=project.name.split("-", 1)[0], count=len(list(dest.glob("*.whl"))),
        built_here=built,
    )  # fmt: skip
