"""Composes the scene description of a keyframe (see :mod:`.describe` for the measurements)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from vsa.schemas import Alert, CameraConfig, Keyframe, ObjectCount, TrackedObject
from vsa.schemas.rules import AlertWords, UnknownRuleKindError, rule_kind

from .describe import (
    NUMBER_WORDS,
    PLURALS,
    U8,
    DescribeOptions,
    ObjectView,
    dominant_colours,
    motion_of,
    place_of,
    time_of_day,
    zones_of,
)


@dataclass(frozen=True)
class SceneDescription:
    """A keyframe's description: the text and the object counts per class."""

    text: str
    objects: tuple[ObjectCount, ...]


def noun(class_name: str, count: int) -> str:
    """ "a person", "2 people", "3 cars"."""
    if count == 1:
        article = "an" if class_name[:1] in "aeiou" else "a"
        return f"{article} {class_name}"
    plural = PLURALS.get(class_name, class_name + "s")
    return f"{NUMBER_WORDS[count] if count < len(NUMBER_WORDS) else count} {plural}"


def named(obj: TrackedObject) -> bool:
    """Whether a caption may describe and name this object: a confirmed track seen on the
    frame. Lost tracks are only predicted; tentative ones (in keyframes of trackers before
    issue 14) have no lasting id."""
    return obj.state == "confirmed"


def view_objects(
    keyframe: Keyframe,
    image: U8 | None,
    config: CameraConfig | None,
    options: DescribeOptions,
    frame_size: tuple[int, int] | None = None,
) -> list[ObjectView]:
    """Measure every object of the keyframe: colour, motion, place, zones.

    ``image`` may be a downscaled copy of the frame (the captioner decodes JPEGs at a reduced
    scale); ``frame_size`` ``(width, height)`` is then the original size the boxes refer to.
    """
    width, height = frame_size or keyframe_size(keyframe, image)
    scale = image.shape[1] / width if image is not None else 1.0
    zones = config.zones if config is not None else []
    visible = [obj for obj in keyframe.objects if named(obj)]
    colours: list[str | None] = [None] * len(visible)
    if options.with_colour and image is not None:
        colours = dominant_colours(
            image, [([v * scale for v in obj.xyxy], obj.class_name) for obj in visible]
        )
    views = []
    for obj, colour in zip(visible, colours, strict=True):
        motion, direction = motion_of(obj)
        views.append(
            ObjectView(
                obj,
                colour,
                motion,
                direction,
                place_of(obj.xyxy, width, height),
                zones_of(obj, zones, width, height),
            )
        )
    return views


def keyframe_size(keyframe: Keyframe, image: U8 | None) -> tuple[int, int]:
    """``(width, height)`` of the frame in pixels."""
    if image is not None:
        return int(image.shape[1]), int(image.shape[0])
    if keyframe.width and keyframe.height:
        return keyframe.width, keyframe.height
    right = max((o.xyxy[2] for o in keyframe.objects), default=1.0)
    bottom = max((o.xyxy[3] for o in keyframe.objects), default=1.0)
    return int(right) + 1, int(bottom) + 1  # unknown size: the objects' extent


def _group_phrase(group: Sequence[ObjectView]) -> str:
    first = group[0]
    words = [noun(first.obj.class_name, len(group))]
    colours = {v.colour for v in group if v.colour}
    if len(group) == 1 and first.colour:
        words = [_with_colour(first)]
    elif len(colours) == 1 and len(group) > 1:
        words.append(f"in {colours.pop()}")
    if first.motion:
        words.append(first.motion)
    if first.direction:
        words.append(first.direction)
    where = f"in zone '{first.zones[0]}'" if first.zones else first.place
    words.append(where)
    return " ".join(words)


def _with_colour(view: ObjectView) -> str:
    if view.obj.class_name == "person":
        return f"a person in {view.colour}"
    article = "an" if (view.colour or "")[:1] in "aeiou" else "a"
    return f"{article} {view.colour} {view.obj.class_name}"


def _groups(views: Sequence[ObjectView]) -> list[list[ObjectView]]:
    """Objects described together share class, motion, direction and zone/place."""
    grouped: dict[tuple[str, ...], list[ObjectView]] = {}
    for view in views:
        where = view.zones[0] if view.zones else view.place
        key = (view.obj.class_name, view.motion, view.direction, where)
        grouped.setdefault(key, []).append(view)
    return sorted(grouped.values(), key=lambda g: (-len(g), g[0].obj.class_name))


def alert_phrase(alert: Alert, views: dict[int, ObjectView], zone_names: dict[str, str]) -> str:
    """One alert in words, e.g. "a person in red has been in zone 'gate' for 45 s (loitering)",
    by the phrase of its kind (``vsa.schemas.rules``).

    Raises:
        UnknownRuleKindError: no rule kind of that name, or one that never alerts: an alert
            this captioner cannot describe is an error, never described as something else.
    """
    view = views.get(alert.track_ids[0])
    subject = _with_colour(view) if view and view.colour else noun(alert.class_name, 1)
    kind = rule_kind(alert.kind)
    if kind.phrase is None:
        raise UnknownRuleKindError(f"rule kind {alert.kind!r} never alerts; alert {alert.alert_id}")
    return kind.phrase(alert, AlertWords(subject, zones=zone_names, noun=noun))


def camera_timezone(config: CameraConfig | None, options: DescribeOptions) -> str | None:
    """The camera's own time zone from its camera-config, else the options' (None: the host's)."""
    if config is not None and config.timezone is not None:
        return config.timezone
    return options.timezone


def describe(
    keyframe: Keyframe,
    image: U8 | None,
    config: CameraConfig | None = None,
    options: DescribeOptions | None = None,
    frame_size: tuple[int, int] | None = None,
) -> SceneDescription:
    """The description of a keyframe; ``image`` is its decoded frame, possibly downscaled from
    ``frame_size`` ``(width, height)`` (None: no colours)."""
    options = options or DescribeOptions()
    views = view_objects(keyframe, image, config, options, frame_size)
    counts = Counter(v.obj.class_name for v in views)
    objects = tuple(ObjectCount(class_name=c, count=n) for c, n in sorted(counts.items()))
    parts = [_group_phrase(g) for g in _groups(views)[: options.max_objects_named]]
    scene = "; ".join(parts) if parts else "no objects in view"
    when = time_of_day(keyframe.capture_ts, camera_timezone(config, options))
    text = f"{when}. {scene[0].upper()}{scene[1:]}."
    if keyframe.alerts:
        by_track = {v.obj.track_id: v for v in views}
        zone_names = {z.zone_id: z.name or z.zone_id for z in (config.zones if config else [])}
        alerts = "; ".join(alert_phrase(a, by_track, zone_names) for a in keyframe.alerts)
        text += f" Alerts: {alerts}."
    return SceneDescription(text[:4000], objects)
