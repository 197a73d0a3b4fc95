"""The demo's console process: its address read from what it printed in this run only, and the
line under the live table for each state."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from vsa.demo_console import DemoConsole, printed_url


def test_printed_url() -> None:
    output = "loading...\nlistening on http://127.0.0.1:8088/search?q=...\nconsole: http://127.0.0.1:8088/\n"
    assert printed_url(output) == "http://127.0.0.1:8088/"
    assert printed_url("listening on http://127.0.0.1:8088/search?q=...\n") is None
    assert printed_url("console: starting\n") is None


def test_only_this_runs_output_counts(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_text("console: http://127.0.0.1:9999/\n")  # an earlier run's process
    state = ["running"]
    console = DemoConsole(log, log.stat().st_size, lambda: state[0])
    assert console.url() is None
    assert console.footer() == ["console: starting..."]
    with log.open("a") as output:
        output.write("listening on ...\nconsole: http://127.0.0.1:8088/\n")
    assert console.url() == "http://127.0.0.1:8088/"
    assert console.footer()[0].startswith("console: http://127.0.0.1:8088/")
    state[0] = "exited 1"
    assert console.footer() == [f"console: exited 1; see {log}"]


def test_keep_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "console.log"
    log.write_text("")
    DemoConsole(log, 0, lambda: "exited 1").keep_up(threading.Event())  # nothing to keep up
    assert f"the console is not up (exited 1); its log: {log}" in capsys.readouterr().out

    log.write_text("console: http://127.0.0.1:8088/\n")
    state = ["running"]
    console = DemoConsole(log, 0, lambda: state[0])
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()  # Ctrl-C
    console.keep_up(stop)
    out = capsys.readouterr().out
    assert "console: http://127.0.0.1:8088/" in out
    assert "Ctrl-C stops it" in out
    assert stop.is_set()  # it served until asked to stop
