"""Issue 15 point 9: ``vsa models list`` and a short ``vsa models info`` (``--verbose``: JSON)."""

from __future__ import annotations

import json

import pytest

from vsa.cli import main
from vsa.services.detector.config import BUNDLED_MODELS, DetectorSettings


def test_models_list_names_every_bundled_model_and_the_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    default = DetectorSettings.model_fields["model"].default
    for name in BUNDLED_MODELS:
        (line,) = [line for line in lines if line.split()[0] == name]
        assert line.endswith("(default)") == (name == default), line
        assert len(line.split()) > 3, f"no description: {line}"


def test_models_info_is_short_by_default_and_json_with_verbose(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["models", "info"]) == 0
    short = capsys.readouterr().out.splitlines()
    assert len(short) <= 6
    assert any(line.startswith("layout ") for line in short)
    assert main(["models", "info", "--verbose"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert len(full["classes"]) == 80
    assert f"({len(full['classes'])} in all)" in short[-1]
