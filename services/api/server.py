"""Serving the API with uvicorn: :class:`ApiServer` binds its socket when made (so the port is
known, and connections queue, before serving starts) and serves in a thread of its own, where
uvicorn leaves the process's signal handlers alone; the process decides when to stop."""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import uvicorn

log = logging.getLogger("vsa.api.server")

#: Largest request head (request line and headers) uvicorn reads, bytes: above every URL the
#: OpenAPI document allows, so such requests reach the app, which refuses long query strings
#: with a JSON 414 (h11's own limit, 16 KiB, would drop them with a bare 400).
MAX_REQUEST_HEAD = 1024 * 1024
#: Seconds open connections (live streams) get to finish once a stop is asked for.
GRACEFUL_S = 3


class ApiServer:
    """An ASGI app served by uvicorn on ``host:port`` (0: any free port)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family)
        self.host = host
        config = uvicorn.Config(
            app,
            log_config=None,  # vsa's structured logging stays in charge
            access_log=False,
            timeout_graceful_shutdown=GRACEFUL_S,
            lifespan="off",
            h11_max_incomplete_event_size=MAX_REQUEST_HEAD,
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def server_port(self) -> int:
        return int(self.socket.getsockname()[1])

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown` (blocks)."""
        self.server.run(sockets=[self.socket])

    def start(self) -> threading.Thread:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self.serve_forever, name="vsa-api", daemon=True)
        self._thread.start()
        return self._thread

    def shutdown(self, timeout_s: float = GRACEFUL_S + 5) -> None:
        """Stop serving: open requests get ``GRACEFUL_S`` seconds; returns once stopped."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.socket.close()


def start_in_thread(server: ApiServer) -> threading.Thread:
    """Serve ``server`` in a daemon thread (tests, embedding in another process)."""
    return server.start()
