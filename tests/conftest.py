"""Fixtures shared by every test layer."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsa.assets import fetch_vtest


@pytest.fixture(scope="session")
def vtest() -> Path:
    """The real sample clip (768×576, 10 fps, 795 frames), fetched once from Debian's opencv-doc."""
    return fetch_vtest()


def pytest_configure(config: pytest.Config) -> None:
    """``VSA_TEST_LOG=1`` (with ``-p no:logging -s``) prints the services' structured logs."""
    import os

    if os.environ.get("VSA_TEST_LOG") == "1":
        from vsa.runtime.logs import setup_logging

        setup_logging("test", "DEBUG" if os.environ.get("VSA_TEST_LOG_DEBUG") else "INFO")
