"""The demo's web console: ``vsa console`` run as one more process of the demo, its address read
from the line it prints once it listens, and kept up after the run until Ctrl-C, so the results
can be looked at (search, alerts, cameras) when the pipeline has stopped."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: What ``vsa console`` prints once it listens: ``console: http://127.0.0.1:8088/``.
CONSOLE_LINE = "console: "
#: Longest wait for the console to print its address after the run (it loads the text model).
START_WAIT_S = 120.0


def printed_url(output: str) -> str | None:
    """The console's address in what ``vsa console`` printed, or None before it listens."""
    for line in output.splitlines():
        if line.startswith(CONSOLE_LINE) and "://" in line:
            return line[len(CONSOLE_LINE) :].strip()
    return None


@dataclass
class DemoConsole:
    """A started ``vsa console`` process of the demo.

    Args:
        log: the file its output goes to (appended to across runs).
        offset: the log's size before this run's process started: only what follows is read.
        state: the process's state as the demo shows it ("running", "exited 1", ...).
    """

    log: Path
    offset: int
    state: Callable[[], str]
    _url: str | None = None

    def url(self) -> str | None:
        """The address, once the process printed it."""
        if self._url is None and self.log.exists():
            with self.log.open("rb") as output:
                output.seek(self.offset)
                self._url = printed_url(output.read().decode("utf-8", "replace"))
        return self._url

    def footer(self) -> list[str]:
        """The console's line under the demo's live table."""
        url, state = self.url(), self.state()
        if url is not None and state == "running":
            return [f"console: {url}  (search, live alerts, cameras)"]
        if state == "running":
            return ["console: starting..."]
        return [f"console: {state}; see {self.log}"]

    def keep_up(self, stop: threading.Event) -> None:
        """After the run: print the address and serve until ``stop`` (Ctrl-C, SIGTERM)."""
        deadline = time.monotonic() + START_WAIT_S
        while self.url() is None and self.state() == "running" and time.monotonic() < deadline:
            if stop.wait(0.5):
                return
        if self.url() is None or self.state() != "running":
            print(f"\nthe console is not up ({self.state()}); its log: {self.log}")
            return
        print(
            f"\nconsole: {self.url()}  (search, live alerts, cameras; the API's OpenAPI at "
            f"{self.url()}docs)\nit stays up for you to look at the results; Ctrl-C stops it",
            flush=True,
        )
        while not stop.wait(1.0) and self.state() == "running":
            pass
