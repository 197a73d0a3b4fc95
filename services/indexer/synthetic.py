"""Synthetic but realistic scene captions, for tests, benchmarks and load runs.

They read like the default scene describer's output (counts per class, colours, positions,
motion, zones, dwell times, time of day), e.g. "2 people walking left near the entrance; a
white van parked on the right; a person in red has been in zone 'gate' for 45 s". A seeded
:class:`random.Random` makes every run draw the same captions.
"""

from __future__ import annotations

import random
from typing import Final

from vsa.schemas import Caption, FrameRef, ObjectCount

CLASSES: Final = ("person", "car", "van", "truck", "bus", "bicycle", "motorcycle", "dog")
_PLURAL: Final = {"person": "people", "bus": "buses"}
COLOURS: Final = ("white", "black", "red", "blue", "grey", "silver", "green", "yellow", "orange")
ZONES: Final = ("gate", "entrance", "loading dock", "parking lot", "crosswalk", "lobby", "fence")
_PLACES: Final = (
    "on the left",
    "on the right",
    "in the centre",
    "near the entrance",
    "near the gate",
    "at the far end",
    "in the foreground",
    "by the fence",
)
_MOVING: Final = (
    "walking left",
    "walking right",
    "walking towards the camera",
    "walking away",
    "running left",
    "crossing the street",
    "standing still",
    "waiting",
)
_VEHICLE_MOTION: Final = (
    "parked",
    "driving left",
    "driving right",
    "turning into the lot",
    "stopped",
    "reversing",
    "moving slowly",
)
_RIDING: Final = ("riding left", "riding right", "parked", "passing by", "waiting at the kerb")
_DOG_COLOURS: Final = ("black", "brown", "white", "grey")
_TIMES: Final = ("at dawn", "in the morning", "at noon", "in the afternoon", "at dusk", "at night")
_CROWD: Final = ("3", "4", "5", "8", "several", "a group of")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _noun(cls: str, count: int) -> str:
    if count == 1:
        return cls
    return _PLURAL.get(cls, cls + "s")


def _motion(rng: random.Random, cls: str) -> str:
    if cls in ("person", "dog"):
        return rng.choice(_MOVING)
    if cls in ("bicycle", "motorcycle"):
        return rng.choice(_RIDING)
    return rng.choice(_VEHICLE_MOTION)


def _group(rng: random.Random) -> tuple[str, str, int]:
    """One clause about a group of objects: (text, class, count)."""
    cls = rng.choice(CLASSES)
    count = rng.choice((1, 1, 1, 2, 2, 3, 4, 5, 6))
    colour = ""
    if cls != "person" and rng.random() < 0.8:
        colour = rng.choice(_DOG_COLOURS if cls == "dog" else COLOURS) + " "
    words = f"{colour}{_noun(cls, count)}"
    number = _article(words) if count == 1 else str(count)
    text = f"{number} {words} {_motion(rng, cls)} {rng.choice(_PLACES)}"
    if cls == "person" and rng.random() < 0.4:
        text += f", one in {rng.choice(COLOURS)}" if count > 1 else f" in {rng.choice(COLOURS)}"
    return text, cls, count


def _dwell(rng: random.Random) -> tuple[str, str]:
    """A dwell clause and the class it is about."""
    colour = rng.choice(COLOURS)
    cls = rng.choice(("person", "person", "car", "van", "bicycle"))
    if cls == "person":
        subject = f"a person in {colour}"
    elif cls == "bicycle":
        subject = f"a cyclist in {colour}"
    else:
        subject = f"{_article(colour)} {colour} {cls}"
    zone = rng.choice(ZONES)
    return f"{subject} has been in zone '{zone}' for {rng.randint(5, 600)} s", cls


def scene_description(rng: random.Random) -> tuple[str, dict[str, int]]:
    """A caption text and its object counts per class."""
    clauses: list[str] = []
    counts: dict[str, int] = {}
    for _ in range(rng.choice((1, 1, 2, 2, 3))):
        text, cls, count = _group(rng)
        clauses.append(text)
        counts[cls] = counts.get(cls, 0) + count
    if rng.random() < 0.35:
        text, cls = _dwell(rng)
        clauses.append(text)
        counts.setdefault(cls, 1)
    if rng.random() < 0.15:
        clauses.append(f"{rng.choice(_CROWD)} people crowding near the {rng.choice(ZONES)}")
        counts["person"] = counts.get("person", 0) + 3
    text = "; ".join(clauses)
    if rng.random() < 0.3:
        text += f" {rng.choice(_TIMES)}"
    return text[0].upper() + text[1:], counts


def synthetic_caption(
    rng: random.Random,
    camera_id: str,
    frame_seq: int,
    capture_ts: float,
    *,
    frames_topic: str = "frames",
    thumbnail_jpeg: bytes = b"",
    text: str | None = None,
) -> Caption:
    """A valid :class:`Caption` with a synthetic description (or ``text``)."""
    description, counts = scene_description(rng)
    return Caption(
        camera_id=camera_id,
        frame_seq=frame_seq,
        frame=FrameRef(
            topic=frames_topic,
            partition=0,
            offset=frame_seq,
            camera_id=camera_id,
            frame_seq=frame_seq,
        ),
        capture_ts=capture_ts,
        text=text or description,
        objects=[ObjectCount(class_name=c, count=min(n, 1000)) for c, n in counts.items()],
        track_ids=sorted(rng.sample(range(1, 500), k=min(3, sum(counts.values())))),
        alert_kinds=["loitering"] if "has been in zone" in description else [],
        captioner="synthetic",
        thumbnail_jpeg=thumbnail_jpeg,
    )
