"""The pure parts of benchmarks/retrieval_quality.py: relevance rules, their checks, the query file
and precision@k."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.bench_loader import load_benchmark

ROOT = Path(__file__).resolve().parents[2]


rq = load_benchmark("retrieval_quality")
ZONES = frozenset({"entrance", "plaza"})


def person(**fields: Any) -> Any:
    return rq.ObjectFacts("person", **fields)


SCENE = rq.KeyframeFacts(
    frame_seq=7,
    objects=(
        person(colour="white", motion="walking", direction="left", zones=("plaza",)),
        person(colour="black", motion="standing", zones=("plaza",)),
        person(colour="black", motion="walking", direction="right", zones=("entrance",)),
        rq.ObjectFacts("car", colour="blue", motion="parked"),
    ),
    alert_kinds=frozenset({"line_crossing"}),
)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"object": {"class": "person", "colour": "white", "direction": "left"}}, True),
        ({"object": {"class": "person", "colour": "white", "direction": "right"}}, False),
        ({"object": {"class": "person", "colour": ["red", "black"], "motion": "standing"}}, True),
        ({"object": {"class": "car"}}, True),
        ({"object": {"class": "truck"}}, False),
        ({"min_count": {"class": "person", "zone": "plaza", "count": 2}}, True),
        ({"min_count": {"class": "person", "zone": "plaza", "count": 3}}, False),
        ({"min_count": {"class": "person", "zone": ["plaza", "entrance"], "count": 3}}, True),
        ({"max_count": {"class": "person", "count": 3}}, True),
        ({"max_count": {"class": "person", "count": 2}}, False),
        ({"max_count": {"class": "person", "colour": "red", "count": 0}}, True),
        ({"alert_kind": "line_crossing"}, True),
        ({"alert_kind": ["loitering", "crowding"]}, False),
        ({"all": [{"object": {"class": "car"}}, {"alert_kind": "loitering"}]}, False),
        ({"any": [{"object": {"class": "car"}}, {"alert_kind": "loitering"}]}, True),
        ({"not": {"alert_kind": "loitering"}}, True),
    ],
)
def test_rules_on_facts(rule: dict[str, Any], expected: bool) -> None:
    rq.check_rule(rule, ZONES)
    assert rq.is_relevant(rule, SCENE) is expected


def test_an_object_without_colour_matches_no_colour() -> None:
    facts = rq.KeyframeFacts(1, (person(colour=None),))
    assert not rq.is_relevant({"object": {"colour": "black"}}, facts)
    assert rq.is_relevant({"object": {"class": "person"}}, facts)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"object": {"class": "person"}, "alert_kind": "loitering"}, "one of"),
        ({"objects": {"class": "person"}}, "unknown rule kind"),
        ({"object": {"class": "persn"}}, "unknown ['persn']"),
        ({"object": {"colour": "teal"}}, "unknown ['teal']"),
        ({"object": {"direction": "up the frame"}}, "unknown ['up the frame']"),
        ({"object": {"zone": "gate"}}, "unknown ['gate']"),
        ({"object": {"hat": "red"}}, "unknown field 'hat'"),
        ({"object": {"colour": 3}}, "expected a name"),
        ({"object": {"class": "person", "count": 2}}, "'count' is not allowed"),
        ({"min_count": {"class": "person"}}, "'count' is required"),
        ({"max_count": {"class": "person", "count": -1}}, "integer >= 0"),
        ({"alert_kind": "fire"}, "unknown ['fire']"),
        ({"all": []}, "non-empty list"),
        ({"any": [{"not": {"object": {"colour": "teal"}}}]}, "rule.any[0].not.object.colour"),
    ],
)
def test_check_rule_names_the_mistake(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        rq.check_rule(rule, ZONES)


def test_precision_at_k() -> None:
    assert rq.precision_at_k([True, False, True, False, False], 40) == pytest.approx(0.4)
    assert rq.precision_at_k([True, False, False, False, False], 2) == pytest.approx(0.5)
    assert rq.precision_at_k([True, True, True, True, True, True], 10) == 1.0  # only the top 5
    assert rq.precision_at_k([False] * 5, 0) is None


def test_random_precision_is_the_base_rate() -> None:
    assert rq.random_precision(50, 200) == pytest.approx(0.25)
    assert rq.random_precision(2, 200) == pytest.approx(5 * 2 / 200 / 2)
    assert rq.random_precision(0, 200) is None


def test_direction_words() -> None:
    assert [rq.direction_word(d) for d in ("left", "up the frame", "down the frame", "")] == [
        "left",
        "up",
        "down",
        "",
    ]


def test_example_queries_are_valid() -> None:
    data = yaml.safe_load((ROOT / "examples" / "vtest-queries.yaml").read_text(encoding="utf-8"))
    rules = yaml.safe_load((ROOT / "examples" / "vtest-rules.yaml").read_text(encoding="utf-8"))
    zones = frozenset(zone["zone_id"] for zone in rules["zones"])
    specs = rq.parse_queries(data, zones)
    assert 8 <= len(specs) <= 12
    assert len({spec.text for spec in specs}) == len(specs)


def test_parse_queries_refuses_unknown_keys() -> None:
    data = {"queries": [{"text": "a car", "relevent": {"object": {"class": "car"}}}]}
    with pytest.raises(ValueError, match="unknown keys"):
        rq.parse_queries(data, ZONES)


def test_distinct_scenes_by_time_span() -> None:
    spans = [
        ("cam-0", 45.0, 47.0),  # a scene
        ("cam-0", 50.0, 50.0),  # 3 s after it: the same scene
        ("cam-1", 46.0, 46.0),  # another camera
        ("cam-0", 60.0, 70.0),  # 10 s later: a new one
        ("cam-0", 20.0, 41.0),  # ends 4 s before the first one starts: the same
    ]
    assert rq.distinct_scenes(spans) == 3
    assert rq.distinct_scenes(spans, gap_s=0.0) == 5
    assert rq.distinct_scenes([]) == 0
