"""The HTTP API as a FastAPI app: search, alert history, the live alert stream, cameras, frames,
and the probes every vsa service has (``/healthz``, ``/readyz``, ``/metrics``).

:func:`create_app` builds it from :class:`ApiParts` (what is available: the search side always,
the Kafka side when configured); a path whose part is missing answers 503 saying so. OpenAPI is
at ``/openapi.json`` and ``/docs``. Every error is ``{"error": "..."}``: 400 for a request that
is not valid (the parameter named), 401 without the credentials, 404 for what does not exist,
503 when OpenSearch or Kafka cannot answer. The web console's static files are mounted with
:func:`mount_console`, after every API path.
"""

from __future__ import annotations

import importlib.resources
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from vsa import __version__
from vsa.runtime.logs import event
from vsa.services.indexer.search import HitNotFoundError, QueryError, SearchUnavailableError

from .auth import auth_dependencies
from .frames import FrameNotFoundError, FramesUnavailableError
from .live import TooManyClientsError
from .metrics import ApiMetrics, RequestMetrics
from .parts import ApiParts, PartMissingError
from .routes import alert_routes, camera_routes, object_routes, ops_routes, search_routes
from .settings import AuthSettings

log = logging.getLogger("vsa.api")

#: Where the documentation pages' scripts and styles are served.
DOCS_ASSETS: Final = "/docs-assets"
#: How the API's query parameters are named in errors, where the query model names them other.
PARAM_NAMES: Final = {"q": "q (the search text)"}

DESCRIPTION = """\
Video stream analytics: search keyframes in plain words, the alert history and a live alert
stream, cameras with their rates, and frames by their Kafka reference.

Every error is `{"error": "..."}`. Times are ISO 8601 (naive = UTC) or an age: `30m`, `2h`, `7d`.
List filters repeat (`camera=a&camera=b`) or take commas (`camera=a,b`).
"""


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=dict(headers or {}))


def validation_message(exc: RequestValidationError) -> str:
    """The first problem of a request, one line: ``<parameter>: <what is wrong>``."""
    first = exc.errors()[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "header", "body")]
    name = loc[0] if loc else "request"
    return f"{PARAM_NAMES.get(name, name)}: {first.get('msg', 'invalid')}"


def install_error_handlers(app: FastAPI) -> None:
    """Every error as ``{"error": ...}`` with the status that says what happened."""

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError | QueryError)
        message = validation_message(exc) if isinstance(exc, RequestValidationError) else str(exc)
        event(log, "api_rejected", logging.INFO, path=request.url.path, error=message[:200])
        return _error(400, message)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return _error(exc.status_code, str(exc.detail), exc.headers)

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return _error(404, str(exc))

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        event(log, "api_unavailable", logging.WARNING, path=request.url.path, error=str(exc)[:300])
        return _error(503, str(exc), {"Retry-After": "5"})

    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("api_crashed", exc_info=exc)  # a bug: answer 500, keep serving
        return _error(500, f"internal error: {type(exc).__name__}")

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(QueryError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    for lookup in (HitNotFoundError, FrameNotFoundError):
        app.add_exception_handler(lookup, not_found)
    for down in (SearchUnavailableError, FramesUnavailableError, PartMissingError):
        app.add_exception_handler(down, unavailable)
    app.add_exception_handler(TooManyClientsError, unavailable)
    app.add_exception_handler(Exception, crashed)


def create_app(
    parts: ApiParts, auth: AuthSettings | None = None, metrics: ApiMetrics | None = None
) -> FastAPI:
    """The API over ``parts``. With ``auth`` every data path (search, alerts, cameras, frames)
    needs its credentials; the probes, ``/metrics``, ``/docs``, ``/redoc``, ``/openapi.json``
    and the console's static files (no data in any of them) stay open."""
    metrics = metrics or ApiMetrics()
    app = FastAPI(
        title="vsa",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # served by offline_docs(), from local files
        redoc_url=None,
        openapi_tags=[
            {"name": "search", "description": "Keyframes by plain words."},
            {"name": "objects", "description": "Objects that look like an object or image."},
            {"name": "alerts", "description": "Alert history and the live stream."},
            {"name": "cameras", "description": "Cameras and frames."},
            {"name": "operations", "description": "Probes and metrics."},
        ],
    )
    app.state.parts, app.state.metrics = parts, metrics
    install_error_handlers(app)
    offline_docs(app)
    guarded = auth_dependencies(auth or AuthSettings())
    app.include_router(ops_routes(parts, metrics))
    app.include_router(search_routes(parts), dependencies=guarded)
    app.include_router(object_routes(parts), dependencies=guarded)
    app.include_router(alert_routes(parts), dependencies=guarded)
    app.include_router(camera_routes(parts), dependencies=guarded)
    app.add_middleware(RequestMetrics, metrics=metrics)
    document_400_not_422(app)
    return app


def document_400_not_422(app: FastAPI) -> None:
    """FastAPI documents a 422 on every path with parameters; this API answers 400 instead
    (its ``ErrorBody``), so the OpenAPI document drops the 422s and their schemas."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def offline_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` with their scripts and styles served from the
    files of the ``fastapi-offline`` package under ``/docs-assets``, instead of FastAPI's
    default CDN links: the documentation works on a machine without the internet."""
    assets = Path(str(importlib.resources.files("fastapi_offline") / "static"))
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title="vsa API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title="vsa API",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )


def mount_console(app: FastAPI, folder: Path, path: str = "/") -> None:
    """Serve the web console's static files from ``folder`` under ``path`` (``index.html`` for
    a folder). Mounted last, so every API path keeps answering; at ``/`` an unknown path is
    then the console's 404 instead of the API's JSON one."""
    app.mount(path, StaticFiles(directory=folder, html=True), name="console")
