"""Fetching artifacts from Maven Central with ``mvn``, once, into a cache folder.

A folder counts as complete only when it holds :data:`MARKER`, written last; work happens in a
``<name>.partial`` sibling that is renamed into place at the end, so an interrupted download is
started again instead of being used half-finished.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from vsa.devstack.errors import DevstackError
from vsa.devstack.procs import tail_text
from vsa.devstack.tools import find_mvn

log = logging.getLogger("vsa.devstack")

MARKER = ".vsa-complete"


@dataclass(frozen=True)
class MavenDep:
    """One Maven dependency. ``exclude_all`` drops its transitive dependencies;
    ``exclude_groups`` drops the subtrees of those groupIds."""

    group: str
    artifact: str
    version: str
    type: str = "jar"
    exclude_all: bool = False
    exclude_groups: tuple[str, ...] = ()


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` was filled completely (its marker file exists)."""
    return (folder / MARKER).is_file()


def _exclusions(dep: MavenDep) -> str:
    groups = ["*"] if dep.exclude_all else list(dep.exclude_groups)
    if not groups:
        return ""
    items = "".join(
        f"<exclusion><groupId>{escape(g)}</groupId><artifactId>*</artifactId></exclusion>"
        for g in groups
    )
    return f"<exclusions>{items}</exclusions>"


def render_pom(dependencies: Sequence[MavenDep]) -> str:
    """A throw-away pom whose runtime dependencies are exactly what is to be fetched."""
    deps = "\n".join(
        f"    <dependency><groupId>{escape(d.group)}</groupId>"
        f"<artifactId>{escape(d.artifact)}</artifactId><version>{escape(d.version)}</version>"
        f"<type>{escape(d.type)}</type>{_exclusions(d)}</dependency>"
        for d in dependencies
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>vsa.devstack</groupId><artifactId>fetch</artifactId><version>1</version>\n"
        "  <packaging>pom</packaging>\n"
        f"  <dependencies>\n{deps}\n  </dependencies>\n</project>\n"
    )


def _run_mvn(pom: Path, output_dir: Path, what: str, timeout_s: float) -> None:
    argv = [
        str(find_mvn()), "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={output_dir}",
    ]  # fmt: skip
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout_s, check=False, cwd=pom.parent
        )
    except subprocess.TimeoutExpired as exc:
        raise DevstackError(f"fetching {what} took more than {timeout_s:.0f} s; retry") from exc
    if proc.returncode != 0:
        output = tail_text(proc.stdout + proc.stderr, 20)
        raise DevstackError(
            f"mvn could not fetch {what} (exit {proc.returncode}); is Maven Central reachable "
            f"(proxy in ~/.m2/settings.xml)? Last lines:\n{output}"
        )


def _folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def maven_fetch(
    what: str, dependencies: Sequence[MavenDep], dest: Path, subdir: str, timeout_s: float
) -> Path:
    """Copy ``dependencies`` (and their runtime dependencies) into ``dest/subdir``, once.

    ``what`` names the download in logs and errors. Returns ``dest``. A complete ``dest`` is
    returned at once; an incomplete one is deleted and fetched again.
    """
    if is_complete(dest):
        return dest
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(dest, ignore_errors=True)
    (partial / subdir).mkdir(parents=True)
    pom = partial / ".pom" / "pom.xml"
    pom.parent.mkdir()
    pom.write_text(render_pom(dependencies), encoding="utf-8")
    log.info("fetching %s from Maven Central...", what, extra={"dest": str(dest)})
    started = time.monotonic()
    _run_mvn(pom, partial / subdir, what, timeout_s)
    shutil.rmtree(pom.parent)
    (partial / MARKER).write_text(f"{what}\n", encoding="utf-8")
    partial.rename(dest)
    log.info(
        "fetched %s",
        what,
        extra={"mib": round(_folder_mib(dest), 1), "seconds": round(time.monotonic() - started, 1)},
    )
    return dest


def extract_zip(archive: Path, dest: Path) -> None:
    """Unpack ``archive`` into ``dest``, keeping the Unix file modes (executable scripts)."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = Path(zf.extract(info, dest))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode)
