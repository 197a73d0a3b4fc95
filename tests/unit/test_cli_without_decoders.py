"""The `vsa` CLI starts on a host without PyAV and simplejpeg (the GPU machine, a Kafka-only
box set up from an offline bundle): only `vsa ingest`/`vsa produce` need them, when they run."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCKED = """
import sys
for name in ("av", "simplejpeg"):
    sys.modules[name] = None  # importing it raises ImportError, as where it is not installed
from vsa.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("argv", [["devstack", "--help"], ["topics", "--help"], ["--version"]])
def test_cli_parser_builds_without_pyav(argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED, *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "ImportError" not in done.stderr
    assert done.stdout.startswith(("usage: vsa", "vsa "))
