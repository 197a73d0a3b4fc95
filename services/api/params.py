"""URL parameters into validated queries (pure): the only way a request reaches OpenSearch.

Every path takes a fixed set of parameters; an unknown one, or a single-valued one given twice,
is a 400 naming it (no query DSL is ever taken from a request). List filters (``camera``,
``class``, ``alert_kind``, ``kind``) may repeat and may hold comma-separated values. Times are
ISO 8601 (naive = UTC) or an age (``30m``, ``2h``, ``7d``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from vsa.services.indexer.alert_history import AlertQuery
from vsa.services.indexer.like import LikeQuery
from vsa.services.indexer.search import QueryError, SearchQuery, parse_time

#: Parameters of ``/search`` (``q`` is the text) and of ``/search/similar/{id}`` (no ``q``).
SEARCH_PARAMETERS: Final = (
    "q",
    "camera",
    "class",
    "alert_kind",
    "since",
    "until",
    "k",
    "hybrid",
    "collapse",
)
SIMILAR_PARAMETERS: Final = SEARCH_PARAMETERS[1:]
ALERT_PARAMETERS: Final = ("camera", "kind", "since", "until", "limit")
LIKE_PARAMETERS: Final = ("camera", "class", "since", "until", "k")
STREAM_PARAMETERS: Final = ("camera", "kind")
FRAME_PARAMETERS: Final = ("camera_id", "frame_seq", "boxes")
#: Parameters that may be given more than once.
REPEATABLE: Final = frozenset({"camera", "class", "alert_kind", "kind"})
PARAMETERS = SEARCH_PARAMETERS  # the name the search endpoint's callers know

_TRUE: Final = {"1", "true", "yes", "on"}
_FALSE: Final = {"0", "false", "no", "off", ""}

Params = Mapping[str, list[str]]


def grouped(items: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """``[(name, value), ...]`` (a query string's items) as ``{name: [values]}``."""
    params: dict[str, list[str]] = {}
    for name, value in items:
        params.setdefault(name, []).append(value)
    return params


def check_names(params: Params, allowed: Collection[str]) -> None:
    """Refuse a parameter not in ``allowed``, and a single-valued one given more than once."""
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise QueryError(f"unknown parameter {unknown[0]!r}; allowed: {', '.join(allowed)}")
    for name, values in params.items():
        if len(values) > 1 and name not in REPEATABLE:
            raise QueryError(f"{name}: give it once, got {len(values)} values")


def _single(params: Params, name: str) -> str | None:
    values = params.get(name)
    return values[-1] if values else None


def _many(params: Params, name: str) -> tuple[str, ...]:
    return tuple(v.strip() for raw in params.get(name, []) for v in raw.split(",") if v.strip())


def flag(params: Params, name: str, default: bool) -> bool:
    """A true/false parameter (1/0, yes/no, on/off; empty is false)."""
    text = _single(params, name)
    if text is None:
        return default
    if text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    raise QueryError(f"{name}: expected true or false, got {text!r}")


def _integer(params: Params, name: str, bounds: str) -> int | None:
    text = _single(params, name)
    if text is not None and not text.strip().isdigit():
        raise QueryError(f"{name}: expected an integer {bounds}, got {text!r}")
    return None if text is None else int(text)


def _times(params: Params, now: datetime | None) -> dict[str, datetime | None]:
    since, until = _single(params, "since"), _single(params, "until")
    return {
        "since": parse_time(since, now) if since else None,
        "until": parse_time(until, now) if until else None,
    }


def query_from_params(
    params: Params, now: datetime | None = None, text: str | None = None
) -> SearchQuery:
    """A validated search query from URL parameters (``{name: [values]}``). With ``text`` (a
    "more like this" search, whose words come from a stored caption) ``q`` is not taken."""
    check_names(params, SEARCH_PARAMETERS if text is None else SIMILAR_PARAMETERS)
    if text is None:
        text = _single(params, "q")
        if text is None:
            raise QueryError("q: the search text is required")
    fields: dict[str, Any] = {
        "text": text,
        "cameras": _many(params, "camera"),
        "classes": _many(params, "class"),
        "alert_kinds": _many(params, "alert_kind"),
        **_times(params, now),
        "hybrid": flag(params, "hybrid", False),
        "collapse": flag(params, "collapse", True),
    }
    k = _integer(params, "k", "1..100")
    if k is not None:
        fields["k"] = k
    return SearchQuery.parse(**fields)


def like_query_from_params(params: Params, now: datetime | None = None) -> LikeQuery:
    """A validated image-to-image query (filters and k) from URL parameters."""
    check_names(params, LIKE_PARAMETERS)
    fields: dict[str, Any] = {
        "cameras": _many(params, "camera"),
        "classes": _many(params, "class"),
        **_times(params, now),
    }
    k = _integer(params, "k", "1..100")
    if k is not None:
        fields["k"] = k
    return LikeQuery.parse(**fields)


def alert_query_from_params(params: Params, now: datetime | None = None) -> AlertQuery:
    """A validated alert-history query from URL parameters."""
    check_names(params, ALERT_PARAMETERS)
    fields: dict[str, Any] = {
        "cameras": _many(params, "camera"),
        "kinds": _many(params, "kind"),
        **_times(params, now),
    }
    limit = _integer(params, "limit", "1..1000")
    if limit is not None:
        fields["limit"] = limit
    return AlertQuery.parse(**fields)


def stream_filter_from_params(params: Params) -> AlertQuery:
    """The camera and kind filters of a live stream (validated like the history's)."""
    check_names(params, STREAM_PARAMETERS)
    return AlertQuery.parse(cameras=_many(params, "camera"), kinds=_many(params, "kind"))
