"""The README's quick start, walked end to end: its commands are parsed from the README's
"Quick start" bash block (so the test fails when the README drifts) and run in order against the
local stack, with this test's own topic prefix, index prefix, consumer groups and metrics ports
(given through the environment, as a user would set them; the lines are run as written).

Lines ending in ``&`` are started in the background and stay up until the ``kill`` line sends
them SIGTERM (each must then exit 0); ingest is bounded by ``--max-frames``. The other lines run
to their end and must exit 0; ``vsa search`` and ``vsa alerts list`` read what the pipeline has
indexed so far and are repeated until they show something (they only read). ``$(vsa assets)``
is replaced by that command's output. A line that is not a ``vsa`` command, ``kill`` or a
comment fails the test.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vsa.runtime.settings import KafkaSettings, OpenSearchSettings

from .test_ingest_live import free_port
from .test_secrets_pipeline import drop_everything_named

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SERVICES = ("ingest", "detector", "tracker", "captioner", "indexer")
#: Frames ingest publishes before it stops by itself (80 s of the clip at 5 frames/s).
MAX_FRAMES = 400
LINE_TIMEOUT_S = 420.0
#: Commands that only read what the pipeline has produced so far: repeated until this is true.
READY: dict[tuple[str, ...], Callable[[str], bool]] = {
    ("search",): lambda out: "no hits" not in out and "frame_seq" in out,
    ("alerts", "list"): lambda out: any(line.strip() for line in out.splitlines()),
}


def quickstart_lines(readme: str) -> list[str]:
    """The commands of the first bash block under the "Quick start" heading, comments dropped."""
    section = re.search(r"^## Quick start.*?$(.*?)(?=^## )", readme, re.S | re.M)
    assert section, "README.md has no '## Quick start' section"
    block = re.search(r"```bash\n(.*?)```", section.group(1), re.S)
    assert block, "the Quick start section has no ```bash block"
    lines = []
    for raw in block.group(1).splitlines():
        text = re.split(r"\s+#\s", " " + raw, maxsplit=1)[0].strip()
        if text and not text.startswith("#"):
            lines.append(text)
    return lines


def test_the_quickstart_block_is_found_and_parsed() -> None:
    lines = quickstart_lines(README.read_text())
    assert lines[0] == "vsa devstack up"
    assert any(line.endswith("&") for line in lines)
    assert lines[-1].startswith("kill ")
    assert quickstart_lines("## Quick start\n```bash\nvsa a  # b\n\n# c\nkill %1\n```\n## x") == [
        "vsa a",
        "kill %1",
    ]


@dataclass
class Walk:
    """Runs the lines; keeps the background jobs (in ``&`` order, like the shell's %1, %2...)."""

    env: dict[str, str]
    logs: Path
    jobs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)

    def argv(self, line: str) -> list[str]:
        if "$(vsa assets)" in line:
            assets = self.foreground(["assets"], "vsa assets").strip()
            line = line.replace('"$(vsa assets)"', shlex.quote(assets))
        words = shlex.split(line)
        assert words[0] == "vsa", f"README quick start: not a vsa command: {line!r}"
        args = words[1:]
        if args[0] == "ingest":
            args += ["--max-frames", str(MAX_FRAMES)]
        return args

    def foreground(self, args: list[str], line: str, not_yet: str | None = None) -> str:
        """Run to the end; exit 0 required, except that a failure whose output holds
        ``not_yet`` returns "" (what it reads does not exist yet)."""
        done = subprocess.run(
            [sys.executable, "-m", "vsa", *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=LINE_TIMEOUT_S,
            check=False,
        )
        out = done.stdout + done.stderr
        if done.returncode != 0 and not_yet is not None and not_yet in out:
            return ""
        assert done.returncode == 0, f"{line!r} exited {done.returncode}:\n{out[-4000:]}"
        return done.stdout

    def background(self, args: list[str], line: str) -> None:
        log = (self.logs / f"job-{len(self.jobs) + 1}-{args[0]}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "vsa", *args],
            env=self.env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.jobs.append((line, proc))

    def until_ready(self, args: list[str], line: str, ready: Callable[[str], bool]) -> str:
        deadline = time.monotonic() + LINE_TIMEOUT_S
        while True:
            self.check_jobs()
            # the indexer creates its indices at start: until then they "do not exist"
            out = self.foreground(args, line, not_yet="does not exist")
            if ready(out) or time.monotonic() > deadline:
                assert ready(out), f"{line!r} still shows nothing:\n{out[-3000:]}"
                return out
            time.sleep(2)

    def check_jobs(self) -> None:
        for line, proc in self.jobs:
            code = proc.poll()
            ingest_done = code == 0 and " ingest " in f" {line} "
            assert code is None or ingest_done, f"{line!r} exited {code}:\n{self.job_log(line)}"

    def job_log(self, line: str) -> str:
        index = next(i for i, (text, _) in enumerate(self.jobs) if text == line)
        [path] = self.logs.glob(f"job-{index + 1}-*.log")
        return path.read_text(errors="replace")[-4000:]

    def kill(self, line: str) -> None:
        for spec in line.split()[1:]:
            assert spec.startswith("%"), f"README quick start: kill takes %jobs: {line!r}"
            job_line, proc = self.jobs[int(spec[1:]) - 1]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait(timeout=30)
            assert code == 0, f"{job_line!r} exited {code} on SIGTERM:\n{self.job_log(job_line)}"

    def run(self, line: str) -> None:
        if line.startswith("kill "):
            self.kill(line)
            return
        background = line.endswith("&")
        args = self.argv(line.rstrip("&").strip())
        if background:
            self.background(args, line)
            return
        self.check_jobs()
        ready = next(
            (ok for words, ok in READY.items() if tuple(args[: len(words)]) == words), None
        )
        if ready is not None:
            self.outputs[line] = self.until_ready(args, line, ready)
        else:
            self.outputs[line] = self.foreground(args, line)


@pytest.fixture
def walk(
    kafka: KafkaSettings, opensearch: OpenSearchSettings, unique_name: str, tmp_path: Path
) -> Iterator[Walk]:
    prefix = f"{unique_name}."
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "OPENSEARCH_URL": opensearch.url,
        "VSA_TOPICS_NAMES__PREFIX": prefix,
        "VSA_TOPICS_PARTITIONS": "2",
        "VSA_INDEXER_INDEX__PREFIX": f"{unique_name}-",
        "VSA_SEARCH_INDEX__PREFIX": f"{unique_name}-",
        "VSA_TRACKER_DATADIR": str(tmp_path / "tracker-data"),
        "VSA_DETECTOR_BACKEND": '{"type": "onnxruntime", "intra_op_num_threads": 1}',
        "VSA_CAPTIONER_CAPTIONS_PER_MINUTE": "0",
    }
    for service in SERVICES:
        upper = service.upper()
        env[f"VSA_{upper}_TOPICS__PREFIX"] = prefix
        env[f"VSA_{upper}_GROUP_ID"] = f"{prefix}{service}"
        env[f"VSA_{upper}_METRICS_PORT"] = str(free_port())
        env[f"VSA_{upper}_METRICS_HOST"] = "127.0.0.1"
    walker = Walk(env, tmp_path)
    try:
        yield walker
    finally:
        for _, proc in walker.jobs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        drop_everything_named(kafka, opensearch, unique_name)


@pytest.mark.timeout(1800)  # five services and the tools, each line waited for by signal
def test_the_readme_quickstart_runs_end_to_end(walk: Walk) -> None:
    lines = quickstart_lines(README.read_text())
    for line in lines:
        walk.run(line)
    tail = next(out for line, out in walk.outputs.items() if line.startswith("vsa alerts tail"))
    assert len([line for line in tail.splitlines() if line.strip()]) == 3, tail
    search = next(out for line, out in walk.outputs.items() if line.startswith("vsa search"))
    assert "cam-0" in search, search
    assert all(proc.poll() is not None for _, proc in walk.jobs)
