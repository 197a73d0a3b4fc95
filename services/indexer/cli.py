"""Command-line entry points: ``vsa indexer`` (the service), ``vsa search`` and
``vsa search-api`` (search from a shell or over HTTP)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from vsa.helptext import add_service_parser, settings_epilog
from vsa.runtime.redact import mask_secrets, mask_url
from vsa.runtime.settings import load_settings
from vsa.topic_flags import add_topic_prefix, topic_overrides

log = logging.getLogger("vsa.search")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``vsa indexer``, ``vsa search`` and ``vsa search-api``."""
    p = add_service_parser(
        sub,
        "indexer",
        "Run the indexer (captions, alerts → OpenSearch).",
        "IndexerSettings",
        "VSA_INDEXER_",
    )
    p.add_argument(
        "--idle-exit", type=float, metavar="S", help="Stop after S seconds without messages."
    )
    p.add_argument(
        "--init-only",
        action="store_true",
        help="Write the index templates and create the indices, then exit (deploy hooks).",
    )
    p.add_argument(
        "--prepare-model",
        action="store_true",
        help="Load the embedding model once (building the int8 ONNX into the cache when "
        "embedding.precision is int8), print what was loaded, exit (image builds).",
    )
    add_topic_prefix(p, "VSA_INDEXER_TOPICS__PREFIX")
    p.set_defaults(func=indexer_main)

    p = sub.add_parser(
        "search",
        help="Search keyframes in plain words.",
        epilog=settings_epilog("SearchSettings", "VSA_SEARCH_", config_flags=False),
    )
    p.add_argument(
        "text", nargs="?", help="What to look for, e.g. 'white van parked near the gate'."
    )
    p.add_argument(
        "--like",
        metavar="OBJECT|IMAGE",
        help="Instead of text: objects that look like a stored object <camera>/<frame_seq>/"
        "<track_id> (as vsa search --json or the API name them), or like a JPEG/PNG file "
        "(crop it to the object). Needs the objects index (indexer index_objects).",
    )
    add_filter_args(p)
    p.add_argument("--json", action="store_true", help="JSON output, thumbnails in base64.")
    p.add_argument(
        "--timing",
        action="store_true",
        help="Print on stderr how long each step took and the time from the process's start "
        "to the first result (always logged as search_answered).",
    )
    p.add_argument(
        "--no-collapse",
        dest="collapse",
        action="store_false",
        help="Show near-duplicate keyframes (same camera, tracks and words, close in time) one "
        "by one instead of as one hit with a count and a time range.",
    )
    p.add_argument("--config", type=Path, help="YAML file with SearchSettings keys.")
    p.set_defaults(func=search_main)

    p = add_service_parser(
        sub,
        "search-api",
        "Serve the HTTP API: search, alerts, cameras, frames (OpenAPI at /docs).",
        "SearchSettings",
        "VSA_SEARCH_",
    )
    p.add_argument("--host", help="Address to bind (default api_host, 127.0.0.1).")
    p.add_argument("--port", type=int, help="Port (default api_port, 8088; 0: any).")
    p.set_defaults(func=search_api_main, console=None)


def add_filter_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--camera", action="append", default=[], help="Camera id (repeatable).")
    parser.add_argument(
        "--class", dest="classes", action="append", default=[], help="Object class (repeatable)."
    )
    parser.add_argument(
        "--alert-kind", dest="alert_kinds", action="append", default=[], help="Alert kind."
    )
    parser.add_argument("--since", help="ISO 8601 (naive = UTC) or an age: 30m, 2h, 7d.")
    parser.add_argument("--until", help="ISO 8601 (naive = UTC) or an age: 30m, 2h, 7d.")
    parser.add_argument("-k", type=int, default=10, help="Hits to return, 1..100 (default 10).")
    parser.add_argument("--hybrid", action="store_true", help="Fuse k-NN with BM25 (RRF).")


def indexer_main(args: argparse.Namespace) -> int:
    from .service import run_indexer
    from .settings import IndexerSettings

    overrides = topic_overrides(args)
    settings = load_settings(IndexerSettings, args.config, **overrides)
    if args.print_config:
        from vsa.runtime.print_config import print_config

        return print_config(settings, args.config, overrides)
    if args.init_only:
        return init_indices(settings)
    if args.prepare_model:
        return prepare_model(settings)
    return run_indexer(settings, idle_exit_s=args.idle_exit)


def init_indices(settings: Any) -> int:
    """``vsa indexer --init-only``: templates and indices, idempotently; 1 if OpenSearch fails."""
    from opensearchpy.exceptions import OpenSearchException

    from .store import EngineUnavailableError, ensure_indices, make_client

    client = make_client(settings.opensearch, settings.retry.request_timeout_s)
    try:
        created = ensure_indices(client, settings)
    except EngineUnavailableError as exc:
        print(f"vsa indexer: {exc}", file=sys.stderr)
        return 1
    except OpenSearchException as exc:
        print(
            f"vsa indexer: cannot set up the indices at {mask_url(settings.opensearch.url)}: "
            f"{mask_secrets(str(exc))}",
            file=sys.stderr,
        )
        return 1
    print(f"index templates written; indices created: {', '.join(created) or 'none (all existed)'}")
    return 0


def prepare_model(settings: Any) -> int:
    """``vsa indexer --prepare-model``: load the embedder (building what it caches), report."""
    from .embedder import make_embedder, resolve_precision

    embedder = make_embedder(settings.embedding)
    precision = resolve_precision(settings.embedding)
    vector = embedder.encode(["a person in red near the gate"])[0]
    print(f"embedding model ready: precision {precision}, {vector.shape[0]} dimensions")
    return 0


def make_searcher(config: Path | None, **overrides: Any) -> Any:
    from .embedder import make_embedder
    from .search import Searcher
    from .settings import SearchSettings
    from .store import make_client

    settings = load_settings(SearchSettings, config, **overrides)
    client = make_client(settings.opensearch, settings.request_timeout_s)
    return Searcher(client, make_embedder(settings.embedding), settings)


def search_main(args: argparse.Namespace) -> int:
    """``vsa search``: print the hits as a table (or JSON); 2 for an invalid query. The index
    is checked before the embedder is loaded; ``--timing`` prints the steps' times."""
    from .oneshot import SearchTiming, search_once
    from .search import QueryError, SearchQuery, SearchUnavailableError, parse_time

    if (args.text is None) == (args.like is None):
        print("vsa search: give either the text to look for or --like, not both", file=sys.stderr)
        return 2
    if args.like is not None:
        return like_main(args)
    timing = SearchTiming()

    try:
        query = SearchQuery.parse(
            text=args.text,
            cameras=tuple(args.camera),
            classes=tuple(args.classes),
            alert_kinds=tuple(args.alert_kinds),
            since=parse_time(args.since) if args.since else None,
            until=parse_time(args.until) if args.until else None,
            k=args.k,
            hybrid=args.hybrid,
            collapse=args.collapse,
        )
    except QueryError as exc:
        print(f"vsa search: invalid query: {exc}", file=sys.stderr)
        return 2
    try:
        hits = search_once(query, args.config, timing)
    except SearchUnavailableError as exc:
        print(f"vsa search: {exc}", file=sys.stderr)
        return 1
    if args.json:
        body = {"query": query.model_dump(mode="json"), "hits": [h.to_json() for h in hits]}
        print(json.dumps(body, indent=2))
    else:
        print(format_hits(hits))
    if args.timing:
        print(timing.line(), file=sys.stderr)
    return 0


def like_main(args: argparse.Namespace) -> int:
    """``vsa search --like``: objects that look like a stored object or an image file."""
    from .like import LikeQuery, ObjectRef, ObjectSearcher
    from .search import HitNotFoundError, QueryError, SearchUnavailableError, parse_time
    from .settings import SearchSettings
    from .store import make_client

    unsupported = [
        flag for flag, on in (("--hybrid", args.hybrid), ("--alert-kind", args.alert_kinds)) if on
    ]
    if unsupported:
        print(f"vsa search: --like does not take {', '.join(unsupported)}", file=sys.stderr)
        return 2
    try:
        query = LikeQuery.parse(
            cameras=tuple(args.camera),
            classes=tuple(args.classes),
            since=parse_time(args.since) if args.since else None,
            until=parse_time(args.until) if args.until else None,
            k=args.k,
        )
        image = Path(args.like)
        ref = None if image.is_file() else ObjectRef.parse(args.like)
    except QueryError as exc:
        print(f"vsa search: invalid query: {exc}", file=sys.stderr)
        return 2
    settings = load_settings(SearchSettings, args.config)
    searcher = ObjectSearcher(
        make_client(settings.opensearch, settings.request_timeout_s), settings
    )
    try:
        if ref is None:
            hits = searcher.like_image(image.read_bytes(), query)
        else:
            hits = searcher.like_object(ref, query)
    except QueryError as exc:
        print(f"vsa search: invalid query: {exc}", file=sys.stderr)
        return 2
    except (HitNotFoundError, SearchUnavailableError) as exc:
        print(f"vsa search: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 1
    if args.json:
        body = {"like": args.like, "query": query.model_dump(mode="json")}
        print(json.dumps({**body, "hits": [h.to_json() for h in hits]}, indent=2))
    else:
        print(format_object_hits(hits))
    return 0


def format_object_hits(hits: list[Any]) -> str:
    """Rank, cosine similarity, camera, UTC time, frame_seq, track, class, and the object's
    reference for the next ``--like``."""
    if not hits:
        return "no hits"
    lines = [
        f"{'#':>3}  {'cosine':>6}  {'camera':<16}  {'time (UTC)':<19}  {'frame_seq':>9}  "
        f"{'track':>6}  {'class':<12}  object"
    ]
    for rank, hit in enumerate(hits, start=1):
        when = hit.capture_time.strftime("%Y-%m-%d %H:%M:%S")
        lines.append(
            f"{rank:>3}  {hit.similarity:>6.3f}  {hit.camera_id[:16]:<16}  {when:<19}  "
            f"{hit.frame_seq:>9}  {hit.track_id:>6}  {hit.class_name[:12]:<12}  "
            f"{hit.camera_id}/{hit.frame_seq}/{hit.track_id}"
        )
    return "\n".join(lines)


def format_hits(hits: list[Any]) -> str:
    """A plain-text table: rank, score, camera, UTC time, frame_seq, keyframes folded into the
    hit with their time span (``x3 12s``), caption."""
    if not hits:
        return "no hits"
    lines = [
        f"{'#':>3}  {'score':>6}  {'camera':<16}  {'time (UTC)':<19}  {'frame_seq':>9}  "
        f"{'n':>8}  caption"
    ]
    for rank, hit in enumerate(hits, start=1):
        when = hit.capture_time.strftime("%Y-%m-%d %H:%M:%S")
        caption = hit.caption if len(hit.caption) <= 90 else hit.caption[:87] + "..."
        first, last = hit.time_range
        folded = f"x{hit.count} {last - first:.0f}s" if hit.count > 1 else "1"
        lines.append(
            f"{rank:>3}  {hit.score:>6.3f}  {hit.camera_id[:16]:<16}  {when:<19}  "
            f"{hit.frame_seq:>9}  {folded:>8}  {caption}"
        )
    return "\n".join(lines)


def search_api_main(args: argparse.Namespace) -> int:
    """``vsa search-api``: the HTTP API (:mod:`vsa.services.api`) until SIGINT/SIGTERM."""
    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["api_host"] = args.host
    if args.port is not None:
        overrides["api_port"] = args.port
    if args.print_config:
        from vsa.runtime.print_config import print_config

        from .settings import SearchSettings

        return print_config(
            load_settings(SearchSettings, args.config, **overrides), args.config, overrides
        )
    from vsa.services.api.service import serve_api

    return serve_api(args.config, overrides, console=args.console)  # vsa console: its files
