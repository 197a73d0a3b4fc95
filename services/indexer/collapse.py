"""Near-duplicate search hits collapsed into one (pure, no OpenSearch).

A camera looking at a quiet scene produces keyframe after keyframe that say the same thing:
consecutive keyframes 45, 46, 47 of one scene with one caption would fill the top three. Two hits
are near-duplicates when all of these hold (:func:`near_duplicates`):

- the same camera;
- capture times at most ``window_s`` apart;
- the same tracks: Jaccard overlap of their track-id sets at least ``min_track_overlap`` (two
  hits without tracks count as the same; one with and one without do not);
- near-identical captions: the word-sequence similarity (difflib ratio over lower-case words,
  0..1) at least ``min_caption_similarity``.

:func:`collapse_hits` walks the ranking best first and puts each hit into the first group that
holds a near-duplicate of it (single linkage: a scene that lasts minutes stays one group as long
as each keyframe is near its neighbour), else starts a group. Each group is returned as its best
hit, carrying the others as :class:`~.search.DuplicateHit` (count, time range); groups keep the
rank of their best hit.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from .search_hits import DuplicateHit, SearchHit

_WORD: Final = re.compile(r"[a-z0-9']+")


class CollapseRule(BaseModel):
    """When two hits are the same scene. Every threshold is inclusive."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_s: float = Field(
        10.0,
        ge=0,
        le=86_400,
        description="Longest gap in capture time between two near-duplicate keyframes, seconds. "
        "Higher: longer still scenes fold into one hit; 0 folds only keyframes of one instant.",
    )
    min_track_overlap: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Least Jaccard overlap of the two keyframes' track ids (tracks in view). "
        "Lower: a scene whose people come and go still folds; 1: only identical track sets.",
    )
    min_caption_similarity: float = Field(
        0.8,
        ge=0,
        le=1,
        description="Least word-sequence similarity of the two captions (difflib ratio, 0..1). "
        "Lower: captions that differ in more words fold; 1: only identical captions.",
    )
    candidates_per_hit: int = Field(
        5,
        ge=1,
        le=50,
        description="Hits fetched per hit returned, before collapsing (at most 500 in all). "
        "Higher: k distinct scenes even when each has many keyframes, slower queries.",
    )


def caption_words(text: str) -> list[str]:
    """Lower-case words and numbers of a caption, punctuation dropped."""
    return _WORD.findall(text.lower())


def caption_similarity(a: str, b: str) -> float:
    """Word-sequence similarity of two captions, 0 (nothing shared) .. 1 (same words)."""
    return difflib.SequenceMatcher(None, caption_words(a), caption_words(b), autojunk=False).ratio()


def track_overlap(a: Sequence[int], b: Sequence[int]) -> float:
    """Jaccard overlap of two track-id sets; 1 when both are empty, 0 when only one is."""
    sa, sb = set(a), set(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def near_duplicates(a: SearchHit, b: SearchHit, rule: CollapseRule) -> bool:
    """Whether two hits show the same scene (see the module docstring). Cheap tests first."""
    return (
        a.camera_id == b.camera_id
        and abs(a.capture_ts - b.capture_ts) <= rule.window_s
        and track_overlap(a.track_ids, b.track_ids) >= rule.min_track_overlap
        and caption_similarity(a.caption, b.caption) >= rule.min_caption_similarity
    )


def as_duplicate(hit: SearchHit) -> DuplicateHit:
    """The short form of a hit folded into another."""
    return DuplicateHit(hit.doc_id, hit.score, hit.frame_seq, hit.capture_ts)


def collapse_hits(hits: Sequence[SearchHit], rule: CollapseRule) -> list[SearchHit]:
    """Groups of near-duplicates, best first; each group is its best hit with the others in
    ``duplicates`` (in rank order). ``hits`` must be best first; they are not changed."""
    groups: list[list[SearchHit]] = []
    for hit in hits:
        home = next(
            (g for g in groups if any(near_duplicates(hit, member, rule) for member in g)), None
        )
        if home is None:
            groups.append([hit])
        else:
            home.append(hit)
    return [
        replace(group[0], duplicates=tuple(as_duplicate(member) for member in group[1:]))
        for group in groups
    ]


def candidates_for(k: int, rule: CollapseRule, most: int = 500) -> int:
    """How many hits to fetch so that collapsing can still fill ``k``."""
    return max(k, min(k * rule.candidates_per_hit, most))
