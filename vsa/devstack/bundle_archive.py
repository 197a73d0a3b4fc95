"""Writing, checking and unpacking the offline bundle's tar (see :mod:`.bundle_manifest`).

Zip files inside a part (jars, the OpenSearch and k-NN zips, wheels are left alone) are
repacked with every entry stored uncompressed, nested jars too, so xz compresses across all of
them: Kafka 3.9.2's jars are 44.5 MB as xz of the jars as they come and 23.2 MB repacked. The
repacked files hold the same entries with the same bytes (jar signatures stay valid); they are
larger on disk (114 MB instead of 46 MB for Kafka).
"""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from vsa.devstack.bundle_manifest import (
    MANIFEST_NAME,
    BundleManifest,
    BundlePart,
    Compression,
    PartRoot,
    check_format,
    check_part_integrity,
    parse_manifest,
)
from vsa.devstack.errors import DevstackError

log = logging.getLogger("vsa.devstack")

#: Seconds between two progress lines of a long step.
PROGRESS_EVERY_S = 5.0
_REPACK_SUFFIXES = (".jar", ".zip")
_CHUNK = 1 << 20


class Progress:
    """Logs ``<what>: <n>% (<done> of <total> MiB)`` at most every :data:`PROGRESS_EVERY_S`."""

    def __init__(self, what: str, total_bytes: int) -> None:
        self.what, self.total, self.done = what, max(total_bytes, 1), 0
        self._last = time.monotonic()

    def add(self, count: int) -> None:
        self.done += count
        if time.monotonic() - self._last >= PROGRESS_EVERY_S:
            self._last = time.monotonic()
            log.info(
                "%s: %d%% (%.0f of %.0f MiB)",
                self.what, 100 * self.done // self.total, self.done / 2**20, self.total / 2**20,
            )  # fmt: skip


@dataclass(frozen=True)
class PartSource:
    """What goes into one part: ``paths`` on this host, each added as the entry of its name."""

    name: str
    root: PartRoot
    paths: tuple[tuple[Path, str], ...]  # (file or folder here, entry name in the part)


def _stored_copy(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src:
        _copy_stored(src, out)
    return out.getvalue()


def _copy_stored(src: zipfile.ZipFile, out: IO[bytes]) -> None:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith(_REPACK_SUFFIXES) and zipfile.is_zipfile(io.BytesIO(data)):
                data = _stored_copy(data)
            info.compress_type = zipfile.ZIP_STORED
            dst.writestr(info, data)


def repack_stored(src: Path, dest: Path) -> None:
    """Copy the zip ``src`` to ``dest`` with every entry (and nested jar/zip) stored."""
    with zipfile.ZipFile(src) as zf, dest.open("wb") as out:
        _copy_stored(zf, out)


def _files_under(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def _staged(path: Path, scratch: Path) -> Path:
    """``path`` itself, or its stored repack in ``scratch`` when it is a jar or zip."""
    if path.suffix not in _REPACK_SUFFIXES or path.is_symlink() or not zipfile.is_zipfile(path):
        return path
    dest = scratch / f"repacked{path.suffix}"
    repack_stored(path, dest)
    return dest


class _Counted(io.RawIOBase):
    """A file read through :class:`Progress`, each byte counted as ``scale`` bytes (the size of
    the original when a stored repack is read)."""

    def __init__(self, raw: IO[bytes], progress: Progress, scale: float) -> None:
        self.raw, self.progress, self.scale = raw, progress, scale

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.progress.add(int(len(data) * self.scale))
        return data


def _add_file(
    tar: tarfile.TarFile, path: Path, arcname: str, progress: Progress, original_size: int
) -> None:
    info = tar.gettarinfo(str(path), arcname)
    if not info.isfile():  # a symlink (the runtime's legal/ notices)
        tar.addfile(info)
        return
    with path.open("rb") as fh:
        tar.addfile(info, _Counted(fh, progress, original_size / max(info.size, 1)))


def _open_tar_writer(out: IO[bytes], compression: Compression, level: int) -> tarfile.TarFile:
    if compression == "xz":
        return tarfile.TarFile.xzopen(None, "w", fileobj=out, preset=level)
    if compression == "gz":
        return tarfile.TarFile.gzopen(None, "w", fileobj=out, compresslevel=max(level, 1))
    return tarfile.TarFile.taropen(None, "w", fileobj=out)


def pack_part(
    source: PartSource, out_dir: Path, compression: Compression, level: int
) -> tuple[BundlePart, Path]:
    """Write ``source`` as ``out_dir/<name>.tar[.xz|.gz]``; its manifest entry and the file."""
    suffix = {"xz": ".tar.xz", "gz": ".tar.gz", "none": ".tar"}[compression]
    path = out_dir / f"{source.name}{suffix}"
    total = sum(f.stat().st_size for here, _ in source.paths for f in _files_under(here))
    progress = Progress(f"packing {source.name}", total)
    files = unpacked = 0
    with (
        tempfile.TemporaryDirectory(dir=out_dir) as scratch,
        path.open("wb") as out,
        _open_tar_writer(out, compression, level) as tar,
    ):
        for here, entry in source.paths:
            for file in _files_under(here):
                staged = _staged(file, Path(scratch))
                arcname = entry if file == here else f"{entry}/{file.relative_to(here)}"
                _add_file(tar, staged, arcname, progress, file.stat().st_size)
                files, unpacked = files + 1, unpacked + staged.stat().st_size
                if staged != file:
                    staged.unlink()
    size, sha = file_digest(path)
    part = BundlePart(
        name=source.name, member=f"parts/{path.name}", compression=compression, sha256=sha,
        size=size, root=source.root, entries=tuple(entry for _, entry in source.paths),
        files=files, unpacked_bytes=unpacked,
    )  # fmt: skip
    log.info("packed %s", source.name, extra={"mib": round(size / 2**20, 1), "files": files})
    return part, path


def _digest_stream(stream: IO[bytes], progress: Progress | None = None) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if progress is not None:
            progress.add(len(chunk))
    return size, digest.hexdigest()


def file_digest(path: Path) -> tuple[int, str]:
    """``(bytes, SHA-256 hex)`` of a file."""
    with path.open("rb") as fh:
        return _digest_stream(fh)


def write_bundle(dest: Path, manifest: BundleManifest, part_files: Sequence[Path]) -> None:
    """The bundle tar at ``dest``: the manifest first, then each part (in manifest order)."""
    partial = dest.with_name(dest.name + ".partial")
    raw = manifest.model_dump_json(indent=2).encode("utf-8")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(MANIFEST_NAME)
        info.size, info.mtime, info.mode = len(raw), int(time.time()), 0o644
        tar.addfile(info, io.BytesIO(raw))
        for part, file in zip(manifest.parts, part_files, strict=True):
            tar.add(file, arcname=part.member, recursive=False)
    partial.replace(dest)


@contextmanager
def open_bundle(path: Path) -> Iterator[tuple[tarfile.TarFile, BundleManifest]]:
    """The bundle's tar and its manifest (read, not yet checked against the parts)."""
    try:
        tar = tarfile.open(path, "r:")  # noqa: SIM115 -- closed by the `with tar` below
    except (OSError, tarfile.TarError) as exc:
        raise DevstackError(f"{path} is not a vsa bundle (not a readable tar: {exc})") from None
    with tar:
        first = tar.next()
        if first is None or first.name != MANIFEST_NAME or not first.isfile():
            raise DevstackError(f"{path} is not a vsa bundle: it does not start with a manifest")
        raw = tar.extractfile(first)
        assert raw is not None  # a regular file member always has a file object
        manifest = parse_manifest(raw.read())
        check_format(manifest)
        yield tar, manifest


def verify_parts(tar: tarfile.TarFile, manifest: BundleManifest) -> None:
    """Every listed part is there with its size and SHA-256, and nothing else is."""
    members = {m.name: m for m in tar.getmembers() if m.name != MANIFEST_NAME}
    unlisted = sorted(set(members) - {p.member for p in manifest.parts})
    if unlisted:
        raise DevstackError(f"the bundle holds members its manifest does not list: {unlisted}")
    for part in manifest.parts:
        member = members.get(part.member)
        if member is None or not member.isfile():
            raise DevstackError(f"the bundle lacks part {part.name} ({part.member}); copy it again")
        stream = tar.extractfile(member)
        assert stream is not None
        size, sha = _digest_stream(stream, Progress(f"checking {part.name}", member.size))
        check_part_integrity(part, size, sha)


def _extract_all(tar: tarfile.TarFile, dest: Path) -> None:
    if hasattr(tarfile, "data_filter"):  # Python 3.12, 3.11.4+, 3.10.12+
        tar.extractall(dest, filter="data")
        return
    for member in tar.getmembers():  # older: refuse what the data filter would refuse
        target = (dest / member.name).resolve()
        if not target.is_relative_to(dest.resolve()) or member.isdev():
            raise DevstackError(f"refusing to unpack {member.name!r}: outside the target")
        if member.issym() and not (target.parent / member.linkname).resolve().is_relative_to(
            dest.resolve()
        ):
            raise DevstackError(f"refusing to unpack link {member.name!r}: it leaves the target")
    tar.extractall(dest)  # noqa: S202 -- every member was checked above


def unpack_part(tar: tarfile.TarFile, part: BundlePart, root: Path) -> None:
    """Unpack a (verified) part into ``root``, replacing each of its entries there whole."""
    member = tar.getmember(part.member)
    stream = tar.extractfile(member)
    assert stream is not None
    root.mkdir(parents=True, exist_ok=True)
    log.info("unpacking %s", part.name, extra={"into": str(root), "mib": part.size // 2**20})
    with tempfile.TemporaryDirectory(prefix=".bundle-", dir=root) as scratch:
        with tarfile.open(fileobj=stream, mode="r:*") as inner:
            _extract_all(inner, Path(scratch))
        for entry in part.entries:
            staged, target = Path(scratch) / entry, root / entry
            if not staged.exists():
                raise DevstackError(f"part {part.name} lacks its entry {entry}")
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            staged.rename(target)
