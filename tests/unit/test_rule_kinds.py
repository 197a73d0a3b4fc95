"""The rule-kind table: one module per kind, found by kind, and the one place every part reads."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import typing

import pytest

from vsa.schemas import Alert, CameraConfig
from vsa.schemas.rules import (
    ALERT_KINDS,
    RULE_KINDS,
    AlertKind,
    RuleKind,
    UnknownRuleKindError,
    kinds,
    rule_kind,
)


def test_every_module_of_kinds_is_registered_under_its_config_kind() -> None:
    modules = {info.name for info in pkgutil.iter_modules(kinds.__path__)}
    assert modules == set(RULE_KINDS)  # module name = kind name, one module per kind
    for name, kind in RULE_KINDS.items():
        assert isinstance(kind, RuleKind)
        assert kind.config.model_fields["kind"].default == name


def test_the_camera_config_union_and_the_alert_kinds_come_from_the_table() -> None:
    schema = CameraConfig.model_json_schema()
    mapping = schema["properties"]["rules"]["items"]["discriminator"]["mapping"]
    assert set(mapping) == set(RULE_KINDS)
    assert set(typing.get_args(AlertKind)) == set(ALERT_KINDS)
    assert set(Alert.model_json_schema()["properties"]["kind"]["enum"]) == set(ALERT_KINDS)
    assert {"zone_intrusion", "line_crossing", "loitering", "crowding"} <= set(ALERT_KINDS)


def test_an_unknown_kind_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(
        UnknownRuleKindError, match=r"unknown rule kind 'parking'; known: .*'crowding'"
    ):
        rule_kind("parking")
    assert rule_kind("loitering") is RULE_KINDS["loitering"]


def test_a_kind_module_imported_first_in_a_fresh_interpreter_loads_the_whole_table() -> None:
    """The kinds import the schema's building blocks and the camera-config model imports the
    kinds: no import order may break that."""
    code = (
        "import vsa.schemas.rules.kinds.loitering as m\n"
        "from vsa.schemas import RULE_KINDS\n"
        "assert RULE_KINDS['loitering'] is m.KIND, RULE_KINDS\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_example_rules_show_every_kind_and_compile_for_the_bundled_detector() -> None:
    from pathlib import Path

    from vsa.services.detector.models import COCO_CLASS_NAMES
    from vsa.services.tracker.rules import compile_rules, load_camera_configs

    example = Path(__file__).resolve().parents[2] / "examples" / "rule-kinds.yaml"
    (config,) = load_camera_configs(example)
    assert {rule.kind for rule in config.rules} == set(RULE_KINDS)
    compiled = compile_rules(config, COCO_CLASS_NAMES)
    assert len(compiled.rules) == len(config.rules)
