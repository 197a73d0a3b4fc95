"""``vsa search-api``: a small HTTP endpoint over :class:`~.search.Searcher` (stdlib server).

``GET /search?q=white+van&camera=gate&camera=lot&class=car&since=2h&until=...&k=10&hybrid=1``

- ``q`` (required, 1..500 chars); ``camera``, ``class``, ``alert_kind`` repeatable or
  comma-separated; ``since``/``until`` ISO 8601 (naive = UTC) or an age (``30m``, ``2h``, ``7d``);
  ``k`` 1..100 (default 10); ``hybrid`` true/false.
- 200: ``{"query": {...}, "took_ms": ..., "hits": [SearchHit.to_json(), ...]}``, thumbnails as
  base64; 400: ``{"error": "..."}`` for any invalid or unknown parameter (no query DSL is ever
  taken from the request); 503 when OpenSearch cannot answer; 404 for other paths.
- ``GET /healthz``: 200 ``{"ok": true}``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from vsa.runtime.logs import event

from .search import QueryError, Searcher, SearchQuery, SearchUnavailableError, parse_time

log = logging.getLogger("vsa.search.api")

PARAMETERS: Final = ("q", "camera", "class", "alert_kind", "since", "until", "k", "hybrid")
_TRUE: Final = {"1", "true", "yes", "on"}
_FALSE: Final = {"0", "false", "no", "off", ""}


def _single(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise QueryError(f"{name}: give it once, got {len(values)} values")
    return values[0]


def _many(params: Mapping[str, list[str]], name: str) -> tuple[str, ...]:
    return tuple(v.strip() for raw in params.get(name, []) for v in raw.split(",") if v.strip())


def _flag(text: str | None) -> bool:
    if text is None:
        return False
    if text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    raise QueryError(f"hybrid: expected true or false, got {text!r}")


def query_from_params(params: Mapping[str, list[str]], now: datetime | None = None) -> SearchQuery:
    """Build a validated query from URL parameters (``parse_qs`` output)."""
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise QueryError(f"unknown parameter {unknown[0]!r}; allowed: {', '.join(PARAMETERS)}")
    text = _single(params, "q")
    if text is None:
        raise QueryError("q: the search text is required")
    k = _single(params, "k")
    if k is not None and not k.strip().isdigit():
        raise QueryError(f"k: expected an integer 1..100, got {k!r}")
    since, until = _single(params, "since"), _single(params, "until")
    fields: dict[str, Any] = {
        "text": text,
        "cameras": _many(params, "camera"),
        "classes": _many(params, "class"),
        "alert_kinds": _many(params, "alert_kind"),
        "since": parse_time(since, now) if since else None,
        "until": parse_time(until, now) if until else None,
        "hybrid": _flag(_single(params, "hybrid")),
    }
    if k is not None:
        fields["k"] = int(k)
    return SearchQuery.parse(**fields)


class SearchHandler(BaseHTTPRequestHandler):
    """Routes ``/search`` and ``/healthz``; one JSON response per request."""

    searcher: Searcher
    server_version = "vsa-search"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/healthz":
            self._json(200, {"ok": True})
        elif url.path == "/search":
            self._search(parse_qs(url.query, keep_blank_values=True))
        else:
            self._json(404, {"error": f"no such path {url.path!r}; try /search?q=..."})

    def _search(self, params: dict[str, list[str]]) -> None:
        started = time.perf_counter()
        try:
            query = query_from_params(params)
            hits = self.searcher.search(query)
        except QueryError as exc:
            self._json(400, {"error": str(exc)})
            event(log, "search_rejected", logging.INFO, error=str(exc)[:200])
            return
        except SearchUnavailableError as exc:
            self._json(503, {"error": str(exc)})
            event(log, "search_failed", logging.WARNING, error=str(exc)[:300])
            return
        except Exception as exc:  # a bug: answer 500 instead of dropping the connection
            log.exception("search_crashed")
            self._json(500, {"error": f"internal error: {type(exc).__name__}"})
            return
        took_ms = round((time.perf_counter() - started) * 1000, 1)
        body = {
            "query": query.model_dump(mode="json"),
            "took_ms": took_ms,
            "hits": [hit.to_json() for hit in hits],
        }
        self._json(200, body)
        event(log, "search", k=query.k, hybrid=query.hybrid, hits=len(hits), took_ms=took_ms)

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return  # one structured line per search is logged instead


def make_server(searcher: Searcher, host: str, port: int) -> ThreadingHTTPServer:
    """A threaded HTTP server for ``searcher`` bound to host:port (0: any free port)."""
    handler = type("BoundSearchHandler", (SearchHandler,), {"searcher": searcher})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def start_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Serve in a daemon thread (tests, embedding in another process)."""
    thread = threading.Thread(target=server.serve_forever, name="vsa-search-api", daemon=True)
    thread.start()
    return thread
