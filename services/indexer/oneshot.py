"""``vsa search`` as one short-lived process: the index is checked before anything is loaded (a
missing index is reported in well under a second), the embedder is loaded once (int8 on ONNX
Runtime by default on a CPU, no torch), and every step is timed, so the time from the process's
start to its first result is reported (``--timing`` on stderr, and the ``search_answered`` log
line).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vsa.runtime.logs import event

if TYPE_CHECKING:
    from .embedder import Embedder, Vectors
    from .search import SearchQuery
    from .search_hits import SearchHit
    from .settings import SearchSettings

log = logging.getLogger("vsa.search")


def process_age_s(
    stat: Path = Path("/proc/self/stat"), uptime: Path = Path("/proc/uptime")
) -> float | None:
    """Seconds since this process started (Linux, 10 ms resolution); None where unknown."""
    try:
        # Field 22 (starttime, clock ticks after boot); the name in field 2 may hold spaces.
        after_name = stat.read_text().rsplit(")", 1)[1].split()
        started = int(after_name[19]) / os.sysconf("SC_CLK_TCK")
        return max(0.0, float(uptime.read_text().split()[0]) - started)
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class SearchTiming:
    """Seconds per step of one search, in order. ``startup_s``: from the process's start to
    this timer's creation (interpreter, imports, argument parsing); None where unknown."""

    startup_s: float | None = field(default_factory=process_age_s)
    steps: list[tuple[str, float]] = field(default_factory=list)
    _last: float = field(default_factory=time.perf_counter)
    _started: float = 0.0

    def __post_init__(self) -> None:
        self._started = self._last

    def mark(self, step: str, since: float | None = None) -> None:
        """Close ``step``: the time since the previous mark (or since ``since``)."""
        now = time.perf_counter()
        self.steps.append((step, now - (self._last if since is None else since)))
        self._last = now

    @property
    def first_result_s(self) -> float:
        """Seconds from the process's start (or the timer's, where unknown) to the last mark."""
        return (self.startup_s or 0.0) + (self._last - self._started)

    def fields(self) -> dict[str, float]:
        """``<step>_s`` for every step (spaces as underscores), plus ``first_result_s``."""
        out = {} if self.startup_s is None else {"startup_s": round(self.startup_s, 3)}
        out.update({f"{name.lower().replace(' ', '_')}_s": round(s, 3) for name, s in self.steps})
        out["first_result_s"] = round(self.first_result_s, 3)
        return out

    def line(self) -> str:
        """One line for people: each step and the time to the first result."""
        parts = [] if self.startup_s is None else [f"start-up {self.startup_s:.2f} s"]
        parts += [f"{name} {seconds:.2f} s" for name, seconds in self.steps]
        origin = "process" if self.startup_s is not None else "search"
        total = f"first result {self.first_result_s:.2f} s after the {origin} started"
        return f"timing: {', '.join(parts)}; {total}"


class TimedEmbedder:
    """An embedder that marks each ``encode`` on a :class:`SearchTiming` ("query embedded")."""

    def __init__(self, embedder: Embedder, timing: SearchTiming) -> None:
        self._embedder = embedder
        self._timing = timing
        self.dims = embedder.dims

    def encode(self, texts: Sequence[str]) -> Vectors:
        vectors = self._embedder.encode(texts)
        self._timing.mark("query embedded")
        return vectors


def require_index(client: Any, settings: SearchSettings) -> None:
    """:class:`~.search.SearchUnavailableError` unless the captions index (or alias) exists."""
    from .search import SearchUnavailableError, guarded

    index = settings.index.captions_index

    def exists() -> bool:
        return bool(client.indices.exists(index=index, request_timeout=settings.request_timeout_s))

    if not guarded(exists, settings.opensearch.url, index):
        raise SearchUnavailableError(f"index {index} does not exist (run vsa indexer)")


def search_once(
    query: SearchQuery, config: Path | None, timing: SearchTiming, **overrides: Any
) -> list[SearchHit]:
    """Check the index, load the embedder, run ``query``; each step marked on ``timing`` and
    logged as ``search_answered``. :class:`~.search.SearchUnavailableError` if OpenSearch
    fails or the index is missing (before any model is loaded)."""
    from vsa.runtime.settings import load_settings

    from .embedder import make_embedder, resolve_precision
    from .search import Searcher
    from .settings import SearchSettings
    from .store import make_client

    settings = load_settings(SearchSettings, config, **overrides)
    client = make_client(settings.opensearch, settings.request_timeout_s)
    require_index(client, settings)
    timing.mark("index checked")
    embedder = make_embedder(settings.embedding)
    timing.mark("embedder loaded")
    hits = Searcher(client, TimedEmbedder(embedder, timing), settings).search(query)
    timing.mark("OpenSearch answered")
    fields: dict[str, Any] = {"hits": len(hits), "precision": resolve_precision(settings.embedding)}
    event(log, "search_answered", logging.INFO, **fields, **timing.fields())
    return hits
