"""Issue 15 point 6: an invalid log level is one clear line and exit 2, not a traceback."""

from __future__ import annotations

import pytest

from vsa.cli import main


def test_bad_log_level_flag_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--log-level", "LOUD", "assets"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "'LOUD' from --log-level" in err[0]
    assert "Traceback" not in err[0]


def test_bad_log_level_env_is_blamed_on_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VSA_LOG_LEVEL", "chatty")
    assert main(["assets"]) == 2
    assert "'chatty' from VSA_LOG_LEVEL" in capsys.readouterr().err
