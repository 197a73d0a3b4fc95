"""``vsa devstack bundle``: one offline archive of what the stack and the services need, and
``vsa devstack up --bundle FILE``, which checks it and unpacks it into the caches.

A bundle holds, each part optional: a jlink'd Java runtime (:mod:`.java_runtime`), Kafka's jars,
OpenSearch's distribution with k-NN (as ``vsa devstack fetch`` downloads them), the project and
its dependencies as wheels for a named Python version and platform (:mod:`.wheels`), and the
models and sample data the services fetch on first use. Unpacked, the parts sit exactly where
``fetch`` and the model fetchers leave theirs, complete markers included, so ``vsa devstack up``
and the services then run with no network. The archive format is in :mod:`.bundle_manifest`.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vsa import __version__
from vsa.assets import cache_dir as vsa_cache_dir
from vsa.devstack import kafka as kafka_mod
from vsa.devstack import opensearch as os_mod
from vsa.devstack.bundle_archive import (
    PartSource,
    open_bundle,
    pack_part,
    unpack_part,
    verify_parts,
    write_bundle,
)
from vsa.devstack.bundle_manifest import (
    DEFAULT_MODELS,
    MODEL_NAMES,
    BundleManifest,
    Compression,
    JavaInfo,
    KafkaInfo,
    OpenSearchInfo,
    Platform,
    WheelsInfo,
    check_platform,
    wheel_notes,
)
from vsa.devstack.errors import DevstackError
from vsa.devstack.java_runtime import (
    KAFKA_MODULES,
    OPENSEARCH_MODULES,
    RUNTIME_DIR_NAME,
    find_jdk,
    host_platform,
    link_runtime,
)
from vsa.devstack.procs import file_lock
from vsa.devstack.settings import DevstackSettings
from vsa.devstack.wheels import WheelTarget, collect_wheels, default_python

log = logging.getLogger("vsa.devstack")

WHEELS_DIR_NAME = "wheels"


def _yolov3_tiny() -> Path:
    from vsa.services.detector.models import fetch_yolov3_tiny

    return fetch_yolov3_tiny().cfg.parent


def _yolov8_fall() -> Path:
    from vsa.services.detector.models import fall_model_onnx

    return fall_model_onnx().path.parent


def _mobilenet() -> Path:
    from vsa.assets import fetch_mobilenet_embedder

    return fetch_mobilenet_embedder().parent


def _vtest() -> Path:
    from vsa.assets import fetch_vtest

    return fetch_vtest()


#: What ``--models`` accepts: name -> (what it is, fetch it once and return its cached path).
MODEL_ASSETS: dict[str, tuple[str, Callable[[], Path]]] = {
    "yolov3-tiny": ("the default detector (Darknet files, ONNX conversions if made)", _yolov3_tiny),
    "mobilenetv2-embedder": ("the tracker's appearance embedder weights", _mobilenet),
    "vtest": ("the sample clip vtest.avi (demo, INT8 calibration)", _vtest),
    "yolov8-fall": ("the Ultralytics YOLOv8 fall-detection export (AGPL-3.0)", _yolov8_fall),
}
assert tuple(MODEL_ASSETS) == MODEL_NAMES


@dataclass(frozen=True)
class BundleOptions:
    """What goes into a bundle. ``wheels``: None leaves them out. ``compression_level``: xz
    preset 0-9 (6: smallest in reasonable time; 0: about 10x faster, about 25 % larger)."""

    java: bool = True
    kafka: bool = True
    opensearch: bool = True
    wheels: WheelTarget | None = None
    models: tuple[str, ...] = DEFAULT_MODELS
    java_home: Path | None = None
    compression_level: int = 6


@dataclass
class _Gathered:
    sources: list[tuple[PartSource, Compression]]
    java: JavaInfo | None = None
    kafka: KafkaInfo | None = None
    opensearch: OpenSearchInfo | None = None
    wheels: WheelsInfo | None = None


def check_models(names: tuple[str, ...]) -> None:
    """Refuse unknown model names, listing the known ones."""
    unknown = [name for name in names if name not in MODEL_ASSETS]
    if unknown:
        raise DevstackError(f"unknown models {unknown}; choose from {', '.join(MODEL_ASSETS)}")


def _add_java(options: BundleOptions, work: Path, found: _Gathered) -> None:
    jdk = find_jdk(options.java_home)
    modules = KAFKA_MODULES + (OPENSEARCH_MODULES if options.opensearch else ())
    link_runtime(jdk, modules, work / RUNTIME_DIR_NAME)
    found.java = JavaInfo(
        version=jdk.version, modules=modules, platform=Platform(os=jdk.os, arch=jdk.arch)
    )
    source = PartSource(
        "java-runtime", "devstack-cache", ((work / RUNTIME_DIR_NAME, RUNTIME_DIR_NAME),)
    )
    found.sources.append((source, "xz"))


def _add_stack(options: BundleOptions, settings: DevstackSettings, found: _Gathered) -> None:
    if options.kafka:
        home = kafka_mod.fetch_kafka(settings)
        found.kafka = KafkaInfo(
            version=settings.kafka_version, scala_version=settings.scala_version
        )
        found.sources.append((PartSource("kafka", "devstack-cache", ((home, home.name),)), "xz"))
    if options.opensearch:
        artifacts = os_mod.fetch_opensearch(settings)
        found.opensearch = OpenSearchInfo(
            version=settings.opensearch_version, knn_version=settings.knn_version
        )
        source = PartSource("opensearch", "devstack-cache", ((artifacts, artifacts.name),))
        found.sources.append((source, "xz"))


def _add_models(names: tuple[str, ...], found: _Gathered) -> None:
    root = vsa_cache_dir().resolve()
    paths = []
    for name in names:
        log.info("fetching %s (once; cached)", name)
        path = MODEL_ASSETS[name][1]().resolve()
        paths.append((path, path.relative_to(root).as_posix()))
    found.sources.append((PartSource("models", "vsa-cache", tuple(paths)), "xz"))


def _gather(options: BundleOptions, settings: DevstackSettings, work: Path) -> _Gathered:
    found = _Gathered(sources=[])
    if options.java:
        _add_java(options, work, found)
    _add_stack(options, settings, found)
    if options.wheels is not None:
        found.wheels = collect_wheels(work / WHEELS_DIR_NAME, options.wheels)
        source = PartSource(
            "wheels", "devstack-cache", ((work / WHEELS_DIR_NAME, WHEELS_DIR_NAME),)
        )
        found.sources.append((source, "none"))  # wheels are zips already; xz gains little
    if options.models:
        _add_models(options.models, found)
    return found


def build_bundle(dest: Path, options: BundleOptions, settings: DevstackSettings) -> BundleManifest:
    """Fetch (once, cached) and link what ``options`` asks for and write the bundle to ``dest``.

    Needs the network for whatever the caches lack (Maven Central, PyPI, Debian's archive) and a
    JDK with jlink for the Java runtime. Returns the manifest written.
    """
    check_models(options.models)
    dest = dest.resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".vsa-bundle-", dir=dest.parent) as tmp:
        work = Path(tmp)
        found = _gather(options, settings, work)
        if not found.sources:
            raise DevstackError("nothing to bundle: every part was left out")
        (work / "parts").mkdir()
        packed = [
            pack_part(src, work / "parts", kind, options.compression_level)
            for src, kind in found.sources
        ]
        manifest = BundleManifest(
            created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            vsa_version=__version__, java=found.java, kafka=found.kafka,
            opensearch=found.opensearch, wheels=found.wheels, models=options.models,
            parts=tuple(part for part, _ in packed),
        )  # fmt: skip
        write_bundle(dest, manifest, [file for _, file in packed])
    return manifest


@dataclass(frozen=True)
class Installed:
    """What ``install_bundle`` unpacked, and where the wheels are (None: the bundle had none)."""

    manifest: BundleManifest
    wheels_dir: Path | None
    notes: tuple[str, ...]

    def pip_command(self) -> str | None:
        """How to install the project from the bundled wheels, offline."""
        wheels = self.manifest.wheels
        if wheels is None or self.wheels_dir is None:
            return None
        return (
            f"python{wheels.python} -m pip install --no-index --find-links {self.wheels_dir} "
            f"{wheels.requirement}"
        )


def _check_versions(manifest: BundleManifest, settings: DevstackSettings) -> None:
    """The stack settings here must name the versions the bundle carries."""
    pairs = []
    if manifest.kafka is not None:
        pairs += [
            ("KAFKA_VERSION", manifest.kafka.version, settings.kafka_version),
            ("SCALA_VERSION", manifest.kafka.scala_version, settings.scala_version),
        ]
    if manifest.opensearch is not None:
        pairs.append(
            ("OPENSEARCH_VERSION", manifest.opensearch.version, settings.opensearch_version)
        )
    for var, carried, configured in pairs:
        if carried != configured:
            raise DevstackError(
                f"the bundle carries {var.split('_')[0].title()} {carried} but VSA_DEVSTACK_{var} "
                f"is {configured} here: unset it (or set it to {carried}), or bundle {configured}"
            )


def install_bundle(path: Path, settings: DevstackSettings) -> Installed:
    """Check ``path`` (format, platform, versions, every part's size and SHA-256) and only then
    unpack each part into the devstack cache or the vsa cache, replacing what was there."""
    host = Platform(os=host_platform()[0], arch=host_platform()[1])
    roots = {"devstack-cache": settings.cache_dir.resolve(), "vsa-cache": vsa_cache_dir().resolve()}
    with file_lock(settings.state_path / "devstack.lock"), open_bundle(path) as (tar, manifest):
        check_platform(manifest, host)
        _check_versions(manifest, settings)
        verify_parts(tar, manifest)
        for part in manifest.parts:
            unpack_part(tar, part, roots[part.root])
    wheels_dir = roots["devstack-cache"] / WHEELS_DIR_NAME if manifest.wheels else None
    notes = tuple(wheel_notes(manifest, default_python(), host))
    return Installed(manifest=manifest, wheels_dir=wheels_dir, notes=notes)
