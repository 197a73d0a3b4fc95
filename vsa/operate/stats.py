"""``vsa stats``: line counts and zone occupancy per camera per hour, from the counts index the
indexer keeps in OpenSearch (one document per counting rule and period, see the ``counts``
topic). Line counts are summed over each hour (a_to_b, b_to_a, total); occupancy shows the
hour's most objects at once and its mean (weighted by the time each period was watched).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``vsa stats``."""
    p = sub.add_parser(
        "stats",
        help="Counts per camera per hour (line counts, zone occupancy) from OpenSearch.",
        description=(__doc__ or "").replace("``", "'"),
    )
    p.add_argument("--camera", action="append", default=[], help="Only this camera (repeatable).")
    p.add_argument("--rule", action="append", default=[], help="Only this rule id (repeatable).")
    p.add_argument(
        "--since",
        default="24h",
        help="Periods from: ISO 8601 (naive = UTC) or an age (30m, 2h, 7d); default 24h.",
    )
    p.add_argument("--until", help="Periods before: ISO 8601 (naive = UTC) or an age.")
    p.add_argument("--json", action="store_true", help="One JSON object per row.")
    p.add_argument("--config", type=Path, help="YAML file with SearchSettings keys.")
    p.set_defaults(func=stats_main)


def stats_main(args: argparse.Namespace) -> int:
    """Print the hourly counts; 2 for invalid filters, 1 when OpenSearch cannot answer."""
    from vsa.runtime.settings import load_settings
    from vsa.services.indexer.count_stats import CountStats, StatsQuery, format_rows
    from vsa.services.indexer.search import QueryError, SearchUnavailableError, parse_time
    from vsa.services.indexer.settings import SearchSettings
    from vsa.services.indexer.store import make_client

    try:
        query = StatsQuery.parse(
            cameras=tuple(args.camera),
            rules=tuple(args.rule),
            since=parse_time(args.since) if args.since else None,
            until=parse_time(args.until) if args.until else None,
        )
    except QueryError as exc:
        print(f"vsa stats: invalid filters: {exc}", file=sys.stderr)
        return 2
    settings = load_settings(SearchSettings, args.config)
    stats = CountStats(make_client(settings.opensearch, settings.request_timeout_s), settings)
    try:
        rows = stats.hourly(query)
    except SearchUnavailableError as exc:
        print(f"vsa stats: {exc}", file=sys.stderr)
        return 1
    if args.json:
        for row in rows:
            doc = {**row.__dict__, "hour": row.hour.isoformat()}
            print(json.dumps({k: v for k, v in doc.items() if v is not None}))
    elif rows:
        print("\n".join(format_rows(rows)))
    else:
        print("no counts")
    return 0
