"""CPU and GPU use of local processes, for the benchmarks that run services as processes.

CPU from ``/proc/<pid>/stat`` (user + system clock ticks) and ``/proc/stat`` (the whole
machine); GPU from ``nvidia-smi pmon`` (SM use per process), sampled in a thread while a
measurement runs; without nvidia-smi there is no GPU figure (None), not a zero.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path


def cpu_ticks(stat_line: str) -> int:
    """utime + stime (clock ticks) from a ``/proc/<pid>/stat`` line (the command may hold
    spaces and parentheses: fields are counted after the last ``)``)."""
    fields = stat_line.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def parse_pmon(text: str) -> dict[int, float]:
    """SM use in % per pid from ``nvidia-smi pmon -c 1 -s u`` output (columns found by the
    header, so driver versions with more columns parse too); "-" counts as 0."""
    columns: list[str] = []
    found: dict[int, float] = {}
    for line in text.splitlines():
        parts = line.split()
        if line.startswith("#"):
            if "pid" in parts:
                columns = parts[1:]
            continue
        if not columns or len(parts) < len(columns):
            continue
        row = dict(zip(columns, parts, strict=False))
        with contextlib.suppress(ValueError, KeyError):
            sm = 0.0 if row["sm"] == "-" else float(row["sm"])
            found[int(row["pid"])] = found.get(int(row["pid"]), 0.0) + sm
    return found


def read_ticks(pids: Sequence[int]) -> int | None:
    """CPU ticks of ``pids`` together; None when one of them cannot be read (it exited)."""
    try:
        return sum(cpu_ticks(Path(f"/proc/{pid}/stat").read_text()) for pid in pids)
    except (OSError, IndexError, ValueError):
        return None


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class GpuSampler:
    """Samples ``nvidia-smi pmon`` in a thread (when nvidia-smi exists); mean SM % per pid."""

    def __init__(self) -> None:
        self.tool = shutil.which("nvidia-smi")
        self.samples: list[dict[int, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> GpuSampler:
        if self.tool:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                out = subprocess.run(
                    [str(self.tool), "pmon", "-c", "1", "-s", "u"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=False,
                )
                self.samples.append(parse_pmon(out.stdout))
            self._stop.wait(1.0)

    def mean(self, pids: Sequence[int]) -> float | None:
        """Mean SM % of ``pids`` together over the samples; None without a GPU."""
        if not self.tool or not pids or not self.samples:
            return None
        return sum(s.get(pid, 0.0) for s in self.samples for pid in pids) / len(self.samples)
