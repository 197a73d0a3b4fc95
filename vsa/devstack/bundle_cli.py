"""The command-line side of the offline bundle: ``vsa devstack bundle`` and ``up --bundle``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vsa.devstack.settings import DevstackSettings


def add_bundle_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``bundle`` and ``up --bundle`` on the ``devstack`` parser."""
    from vsa.devstack.bundle_manifest import DEFAULT_MODELS, MODEL_NAMES

    g = p.add_argument_group("offline bundle (bundle, up --bundle)")
    g.add_argument(
        "--bundle", type=Path, metavar="FILE",
        help="up: check and unpack this bundle into the caches first, then start what it carries.",
    )  # fmt: skip
    g.add_argument("-o", "--output", type=Path, metavar="FILE", help="bundle: where to write it.")
    g.add_argument("--no-java", action="store_true", help="bundle: no Java runtime (host has one).")
    g.add_argument("--no-wheels", action="store_true", help="bundle: no wheels.")
    g.add_argument(
        "--models", default=",".join(DEFAULT_MODELS), metavar="LIST",
        help=f"bundle: comma-separated, 'all' or 'none' (default %(default)s); known: "
        f"{', '.join(MODEL_NAMES)}.",
    )  # fmt: skip
    g.add_argument(
        "--python", metavar="X.Y", help="bundle: wheels for this Python (default: this one)."
    )
    g.add_argument(
        "--platform", metavar="TAG",
        help="bundle: wheels for this platform tag, e.g. manylinux_2_28_x86_64 (default: this "
        "host's).",
    )  # fmt: skip
    g.add_argument(
        "--pip-option", action="append", default=[], metavar="OPT",
        help="bundle: passed to pip (repeat), e.g. --pip-option=--index-url=URL.",
    )  # fmt: skip
    g.add_argument(
        "--build-python", type=Path, metavar="PATH",
        help="bundle: a Python of the --python version, to build wheels of sdist-only "
        "dependencies.",
    )  # fmt: skip
    g.add_argument("--java-home", type=Path, metavar="DIR", help="bundle: the JDK to jlink from.")
    g.add_argument(
        "--compression-level", type=int, default=6, choices=range(10), metavar="0-9",
        help="bundle: xz preset (default 6; 0 is about 10x faster and 25%% larger).",
    )  # fmt: skip


def _models(text: str) -> tuple[str, ...]:
    from vsa.devstack.bundle_manifest import MODEL_NAMES

    if text.strip() in ("", "none"):
        return ()
    if text.strip() == "all":
        return MODEL_NAMES
    return tuple(name.strip() for name in text.split(",") if name.strip())


def bundle_command(args: argparse.Namespace, settings: DevstackSettings) -> int:
    """``vsa devstack bundle``: build it, then say what it holds and how big it is."""
    from vsa.devstack.bundle import BundleOptions, build_bundle
    from vsa.devstack.wheels import WheelTarget, default_platform, default_python

    wheels = None
    if not args.no_wheels:
        wheels = WheelTarget(
            python=args.python or default_python(), platform=args.platform or default_platform(),
            pip_options=tuple(args.pip_option), build_python=args.build_python,
        )  # fmt: skip
    options = BundleOptions(
        java=not args.no_java, kafka=not args.no_kafka, opensearch=not args.no_opensearch,
        wheels=wheels, models=_models(args.models), java_home=args.java_home,
        compression_level=args.compression_level,
    )  # fmt: skip
    output = args.output or Path(f"vsa-bundle-{time.strftime('%Y%m%d')}.tar")
    started = time.monotonic()
    manifest = build_bundle(output, options, settings)
    size = output.stat().st_size
    print(f"wrote {output} ({size / 2**20:.1f} MiB in {time.monotonic() - started:.0f} s):")
    for line in manifest.summary():
        print(f"  {line}")
    for part in manifest.parts:
        print(f"  part {part.name:14} {part.size / 2**20:8.1f} MiB  sha256 {part.sha256[:16]}...")
    print(f"on the offline host: vsa devstack up --bundle {output.name}")
    return 0


def up_from_bundle(args: argparse.Namespace, settings: DevstackSettings) -> int:
    """``vsa devstack up --bundle FILE``: check, unpack, start what the bundle carries."""
    from vsa.devstack import stack
    from vsa.devstack.bundle import install_bundle

    installed = install_bundle(args.bundle, settings)
    manifest = installed.manifest
    print(f"unpacked {args.bundle}:")
    for line in manifest.summary():
        print(f"  {line}")
    for note in installed.notes:
        print(f"note: {note}")
    kafka = manifest.kafka is not None and not args.no_kafka
    opensearch = manifest.opensearch is not None and not args.no_opensearch
    if kafka or opensearch:
        stack.up(kafka=kafka, opensearch=opensearch, settings=settings)
        print(stack.format_status(stack.status(settings)))
        print("stop it with: vsa devstack down")
    if (command := installed.pip_command()) is not None:
        print(f"install the services offline with:\n  {command}")
    return 0
