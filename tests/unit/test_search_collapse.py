"""Near-duplicate hits collapsed (pure): when two hits are one scene, how groups form, what a
group says (count, time range, duplicates), and "more like this" leaving out its source."""

from __future__ import annotations

from typing import Any

import pytest

from vsa.schemas import FrameRef
from vsa.services.indexer.collapse import (
    CollapseRule,
    candidates_for,
    caption_similarity,
    collapse_hits,
    near_duplicates,
    track_overlap,
)
from vsa.services.indexer.search import SearchQuery, more_like_query, without_hit
from vsa.services.indexer.search_hits import SearchHit

T0 = 1_767_279_600.0
SCENE = "Afternoon. 2 people walking left in zone 'entrance'; a white car parked on the right."
RULE = CollapseRule()


def hit(
    seq: int,
    *,
    camera: str = "cam-0",
    t: float | None = None,
    tracks: tuple[int, ...] = (1, 2),
    caption: str = SCENE,
    score: float = 0.9,
) -> SearchHit:
    ts = T0 + (seq if t is None else t)
    return SearchHit(
        doc_id=f"{camera}:{seq}",
        score=score,
        similarity=2 * score - 1,
        camera_id=camera,
        frame_seq=seq,
        capture_ts=ts,
        caption=caption,
        captioner="scene",
        classes=("person",),
        track_ids=tracks,
        alert_kinds=(),
        frame=FrameRef(topic="frames", partition=0, offset=seq, camera_id=camera, frame_seq=seq),
        thumbnail_jpeg=b"",
    )


def test_caption_similarity_and_track_overlap() -> None:
    assert caption_similarity(SCENE, SCENE.upper()) == 1.0  # case and punctuation do not count
    assert caption_similarity(SCENE, SCENE.replace("2 people", "3 people")) > 0.9
    assert caption_similarity(SCENE, "A red truck turning at night.") < 0.2
    assert caption_similarity("", "") == 1.0
    assert track_overlap([1, 2, 3], [2, 3, 4]) == pytest.approx(0.5)
    assert track_overlap([], []) == 1.0
    assert track_overlap([1], []) == 0.0


@pytest.mark.parametrize(
    ("other", "same"),
    [
        ({}, True),
        ({"t": 10.0}, True),  # window_s is inclusive
        ({"t": 10.5}, False),
        ({"camera": "cam-1"}, False),
        ({"tracks": (2, 3)}, False),  # overlap 1/3
        ({"tracks": (1, 2, 3)}, True),  # overlap 2/3
        ({"tracks": ()}, False),
        ({"caption": SCENE.replace("2 people", "3 people")}, True),
        ({"caption": "Night. A red truck turning left at the gate."}, False),
    ],
)
def test_near_duplicates(other: dict[str, Any], same: bool) -> None:
    first = hit(0, t=0.0)
    second = hit(1, **{"t": 1.0, **other})
    assert near_duplicates(first, second, RULE) is same
    assert near_duplicates(second, first, RULE) is same


def test_collapse_keeps_rank_and_reports_count_and_time_range() -> None:
    other_scene = "Night. A red truck turning left at the gate."
    hits = [
        hit(46, score=0.95),
        hit(47, score=0.94),
        hit(10, caption=other_scene, tracks=(7,), score=0.93),
        hit(45, score=0.92),
        hit(46, camera="cam-1", score=0.91),  # the same words on another camera stay apart
    ]
    groups = collapse_hits(hits, RULE)
    assert [g.doc_id for g in groups] == ["cam-0:46", "cam-0:10", "cam-1:46"]
    first = groups[0]
    assert first.count == 3
    assert [d.doc_id for d in first.duplicates] == ["cam-0:47", "cam-0:45"]  # rank order
    assert first.time_range == (T0 + 45, T0 + 47)
    body = first.to_json()
    assert body["count"] == 3
    assert body["first_capture_time"] < body["capture_time"] < body["last_capture_time"]
    assert [d["frame_seq"] for d in body["duplicates"]] == [47, 45]
    assert groups[1].count == 1
    assert groups[1].to_json()["duplicates"] == []
    assert hits[0].duplicates == ()  # inputs are not changed


def test_a_long_still_scene_chains_into_one_group() -> None:
    # each keyframe 8 s after the last: 0 and 24 are 24 s apart, but every step is within 10 s
    hits = [hit(seq, t=float(seq)) for seq in (0, 8, 16, 24)]
    (group,) = collapse_hits(hits, RULE)
    assert group.count == 4
    assert group.time_range == (T0, T0 + 24)
    assert len(collapse_hits(hits, CollapseRule(window_s=5))) == 4


def test_strict_rules_collapse_nothing() -> None:
    hits = [hit(0), hit(1, caption=SCENE.replace("2 people", "3 people"))]
    assert len(collapse_hits(hits, CollapseRule(min_caption_similarity=1.0))) == 2
    assert len(collapse_hits(hits, CollapseRule())) == 1
    assert collapse_hits([], RULE) == []


def test_candidates_for() -> None:
    assert candidates_for(10, RULE) == 50
    assert candidates_for(100, RULE) == 500  # capped
    assert candidates_for(100, CollapseRule(candidates_per_hit=1)) == 100
    assert candidates_for(3, RULE, most=2) == 3  # never below k


def test_without_hit_drops_the_group_that_holds_it() -> None:
    groups = collapse_hits([hit(46), hit(47), hit(10, caption="Night.", tracks=(7,))], RULE)
    assert [g.doc_id for g in without_hit(groups, "cam-0:47")] == ["cam-0:10"]
    assert [g.doc_id for g in without_hit(groups, "cam-0:10")] == ["cam-0:46"]
    assert len(without_hit(groups, "cam-9:1")) == 2


def test_more_like_query_keeps_filters_and_takes_a_long_caption() -> None:
    query = SearchQuery(text="van", cameras=("gate",), k=3, collapse=True)
    like = more_like_query(query, "x" * 2000)
    assert (like.cameras, like.k, like.collapse) == (("gate",), 3, True)
    assert len(like.text) == 2000
