"""Structured logs: one line per event, ``key=value`` pairs (or JSON with ``VSA_LOG_FORMAT=json``).

Use :func:`event` so every line carries the service name and, where known, camera_id and
frame_seq::

    event(log, "frame_dropped", camera_id="cam-1", frame_seq=42, reason="queue_full")
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from vsa.runtime.redact import mask_secrets

_SERVICE = "vsa"
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


def _quote(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' ="\n\t'):
        return json.dumps(text)
    return text


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=... service=... event=... k=v`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": _SERVICE,
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields.update(_extras(record))
        line = " ".join(f"{k}={_quote(v)}" for k, v in fields.items())
        if record.exc_info:
            line += " exc=" + json.dumps(self.formatException(record.exc_info))
        return mask_secrets(line)  # last line of defence: no credential leaves in a log line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "service": _SERVICE,
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields.update(_extras(record))
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return mask_secrets(json.dumps(fields, default=str))


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")
    }


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not to the stream it was
    when logging was set up: a CLI command run in-process (tests, notebooks) may be handed a
    stderr that is closed afterwards, and later records must not fail on it."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def setup_logging(service: str, level: str | None = None) -> None:
    """Configure the root logger once for a service process (stderr, key=value or JSON)."""
    global _SERVICE
    _SERVICE = service
    handler = _StderrHandler()
    fmt = os.environ.get("VSA_LOG_FORMAT", "kv").lower()
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("VSA_LOG_LEVEL", "INFO")).upper())


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event with structured fields (camera_id, frame_seq, ...)."""
    logger.log(level, name, extra=fields)
