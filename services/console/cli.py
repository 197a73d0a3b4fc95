"""``vsa console``: the HTTP API (``vsa search-api``) with the web console mounted at ``/``.

The settings are the API's (``VSA_SEARCH_`` for search, address and port; ``VSA_API_`` for the
credentials and the Kafka side). A browser sends HTTP basic credentials on every request, images
and the live stream included, but never an API key: with ``VSA_API_AUTH__MODE=api_key`` the
console refuses to start (use basic, or none on loopback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vsa.helptext import add_service_parser
from vsa.runtime.settings import load_settings

#: The console's files, installed with the package (pyproject: package-data).
STATIC = Path(__file__).resolve().parent / "static"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``vsa console``."""
    p = add_service_parser(
        sub,
        "console",
        "Serve the web console (search, live alerts, cameras) and the HTTP API in one process.",
        "SearchSettings",
        "VSA_SEARCH_",
    )
    p.add_argument("--host", help="Address to bind (default api_host, 127.0.0.1).")
    p.add_argument("--port", type=int, help="Port (default api_port, 8088; 0: any).")
    p.set_defaults(func=console_main, console=STATIC)


def console_main(args: argparse.Namespace) -> int:
    """Serve the API and the console until SIGINT/SIGTERM (``vsa search-api`` with the console's
    files); 2 when the settings cannot work."""
    from vsa.services.api.settings import ApiSettings
    from vsa.services.indexer.cli import search_api_main

    if not args.print_config and load_settings(ApiSettings).auth.mode == "api_key":
        print(
            "vsa console: a browser cannot send an API key on images and live streams; set "
            "VSA_API_AUTH__MODE=basic (the browser asks for the user name and password) or "
            "serve the API alone with vsa search-api",
            file=sys.stderr,
        )
        return 2
    return search_api_main(args)
