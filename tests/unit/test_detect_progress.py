"""Issue 15 point 9: progress of long ``vsa detect`` runs on stderr."""

from __future__ import annotations

import io

from vsa.services.detector.cli import DetectProgress


def test_progress_counts_frames_and_throttles_lines() -> None:
    stream = io.StringIO()
    progress = DetectProgress(stream, interval_s=3600)
    progress.update(8)
    progress.update(8)
    assert stream.getvalue() == ""  # throttled: nothing before the interval
    progress.update(4, final=True)
    text = stream.getvalue()
    assert text.startswith("vsa detect: 20 frames, ")
    assert text.endswith(" frames/s\n")


def test_progress_rewrites_one_line_while_running() -> None:
    stream = io.StringIO()
    progress = DetectProgress(stream, interval_s=0.0)
    progress.update(8)
    progress.update(8)
    assert stream.getvalue().count("\r") == 2
    assert "16 frames" in stream.getvalue()
