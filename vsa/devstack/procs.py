"""Process helpers: pid files, detached start, ownership checks, stop, ports, log tails, a lock.

A pid file alone is not trusted: a process counts as ours only while ``/proc/<pid>/cmdline`` is a
``java`` command line that contains the component's marker argument (its config file or data
path), so a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("vsa.devstack")

# Children started by this process, kept so they are reaped with their exit code and never
# garbage-collected while running (Popen warns when that happens).
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class RunAs:
    """User and group ids a process is started as (OpenSearch when the caller is root)."""

    user: str
    uid: int
    gid: int


def read_pid(pid_file: Path) -> int | None:
    """The pid stored in ``pid_file``, or None when the file is missing or not a number."""
    try:
        return int(pid_file.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def write_pid(pid_file: Path, pid: int) -> None:
    """Write ``pid`` atomically (a reader never sees a half-written file)."""
    tmp = pid_file.with_name(pid_file.name + ".tmp")
    tmp.write_text(f"{pid}\n", encoding="ascii")
    tmp.replace(pid_file)


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def is_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as dead and is reaped when it is our child)."""
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    state = _proc_state(pid)
    if state is None:
        return False
    if state == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def exit_code(pid: int) -> int | None:
    """Exit status of a child started by this process with :func:`spawn`; None if unknown."""
    child = _children.get(pid)
    return child.poll() if child is not None else None


def cmdline(pid: int) -> list[str]:
    """The argument vector of ``pid``; empty when it is gone or unreadable."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_ours(pid: int, marker: str) -> bool:
    """Whether ``pid`` is a live ``java`` process whose arguments include ``marker``."""
    argv = cmdline(pid)
    return bool(argv) and Path(argv[0]).name == "java" and marker in argv and is_alive(pid)


def owned_pid(pid_file: Path, marker: str) -> int | None:
    """The pid in ``pid_file`` if that process is still ours; a stale pid file is removed."""
    pid = read_pid(pid_file)
    if pid is not None and is_ours(pid, marker):
        return pid
    if pid_file.exists():
        log.info("removing stale pid file", extra={"pid_file": str(pid_file), "pid": pid})
        pid_file.unlink(missing_ok=True)
    return None


def spawn(
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str],
    cwd: Path,
    run_as: RunAs | None = None,
) -> int:
    """Start ``argv`` detached (own session, outlives the caller), stdout+stderr to ``log_path``.

    Returns the pid.

    The previous log is kept as ``<log>.1``, so the log holds this run only.
    """
    if log_path.exists():
        log_path.replace(log_path.with_name(log_path.name + ".1"))
    with log_path.open("ab") as out:
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
            close_fds=True,
            user=run_as.uid if run_as else None,
            group=run_as.gid if run_as else None,
            extra_groups=[] if run_as else None,
        )
    _children[child.pid] = child
    return child.pid


def _wait_gone(pids: Sequence[int], timeout_s: float) -> list[int]:
    """Wait until every pid has ended or ``timeout_s`` passed; the pids still alive."""
    deadline = time.monotonic() + timeout_s
    alive = [pid for pid in pids if is_alive(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in alive if is_alive(pid)]
    return alive


def stop_all(pids: Sequence[int], timeout_s: float) -> set[int]:
    """SIGTERM every pid at once, then SIGKILL those still running after ``timeout_s`` seconds.

    Returns the pids that had to be killed. Signalling all first matters for a KRaft cluster: a
    broker's controlled shutdown needs a controller quorum, which nodes stopped one after the
    other would take away from the last ones.
    """
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    stubborn = _wait_gone(pids, timeout_s)
    for pid in stubborn:
        log.warning("process ignored SIGTERM; killing", extra={"pid": pid, "waited_s": timeout_s})
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _wait_gone(stubborn, 10.0)
    return set(stubborn)


def stop(pid: int, timeout_s: float) -> bool:
    """SIGTERM ``pid``, then SIGKILL after ``timeout_s`` seconds. Returns True if it was killed."""
    return bool(stop_all([pid], timeout_s))


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on ``host:port`` (a bind there fails with EADDRINUSE)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def describe_listener(port: int) -> str:
    """Who listens on ``port``, from ``ss`` (best effort; empty when unknown)."""
    ss = shutil.which("ss")
    if ss is None:
        return ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        proc = subprocess.run(
            [ss, "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=5
        )
        return " ".join(proc.stdout.split())
    return ""


def tail_text(text: str, lines: int) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.splitlines()[-lines:])


def tail_file(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file (at most its last 256 KiB are read)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 256 * 1024))
            text = fh.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return tail_text(text, lines) or f"({path} is empty)"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (serialises concurrent ``up``/``down`` calls)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
