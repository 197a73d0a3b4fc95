"""ruff (lint and format) and mypy over the whole code base, as part of the test suite."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: A first mypy run (no cache, as on a fresh clone) over ~200 files took over the suite's default
#: 300 s hang guard on a loaded 2-core machine; it is a long computation, not a hang.
CHECK_TIMEOUT_S = 1200


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
@pytest.mark.timeout(CHECK_TIMEOUT_S)
def test_static_checks(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
