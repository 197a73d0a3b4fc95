"""Issue 15 point 6: docs/settings.md is generated from the settings models and kept current."""

from __future__ import annotations

from vsa.runtime.settings_doc import DOC_PATH, render


def test_settings_reference_is_current() -> None:
    assert DOC_PATH.read_text(encoding="utf-8") == render(), (
        "docs/settings.md is stale: run `python -m vsa.runtime.settings_doc`"
    )


def test_settings_reference_lists_keys_env_names_bounds_and_descriptions() -> None:
    from vsa.services.detector.config import DetectorSettings

    page = render()
    field = DetectorSettings.model_fields["max_batch"]
    row = next(line for line in page.splitlines() if "`VSA_DETECTOR_MAX_BATCH`" in line)
    assert row.startswith("| `max_batch` |")
    assert "ge 1" in row
    assert f"`{field.default!r}`" in row
    assert " ".join((field.description or "").split()) in row
