"""Keep credentials out of logs, error messages, metric labels and dead-letter headers.

One helper for the whole code base: :func:`mask_secrets` hides the user-info part of every URL in
a text (``rtsp://admin:s3cret@host/x`` -> ``rtsp://***@host/x``), the values of credential-like
query parameters (``?password=...``, ``token=...``) and every secret value registered with
:func:`register_secret` (the ``SecretStr`` settings register theirs when loaded). The structured
logger applies it to every line it writes, as the last line of defence; code that formats a URL
for people (``camera_running url=...``, source errors) calls :func:`mask_url` itself.

Imports nothing from vsa, so schemas and runtime modules can all use it.
"""

from __future__ import annotations

import re
import threading
from typing import Any

MASK = "***"

# scheme://userinfo@ : userinfo runs to the last '@' before the path, query, fragment, a space or
# a quote (a password may contain ':' or a raw '@').
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s?#\"'<>]+)@")
_QUERY_SECRET = re.compile(
    r"(?P<key>[?&;](?:password|passwd|pwd|pass|secret|token|access_token|api_key|apikey|key)=)"
    r"(?P<value>[^&#\s\"']+)",
    re.IGNORECASE,
)
#: Registered secrets shorter than this are not replaced in free text: a 1-3 character
#: "password" would mask unrelated characters everywhere and protects nothing.
MIN_SECRET_CHARS = 4

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()


def mask_url(url: str) -> str:
    """``url`` with its user:password (or token) and secret query values replaced by ``***``."""
    return mask_secrets(url)


def mask_secrets(text: str) -> str:
    """``text`` with URL credentials, secret query values and registered secrets masked."""
    if not text:
        return text
    masked = _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    masked = _QUERY_SECRET.sub(lambda m: f"{m.group('key')}{MASK}", masked)
    for secret in _secrets:
        if secret in masked:
            masked = masked.replace(secret, MASK)
    return masked


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it appears in logged text from now on (process-wide)."""
    global _secrets
    if value is None or len(value) < MIN_SECRET_CHARS:
        return
    with _lock:
        _secrets = _secrets | {value}


def register_model_secrets(model: Any) -> None:
    """Register every ``SecretStr`` value found in a pydantic model, nested models included."""
    from pydantic import BaseModel, SecretStr

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            register_secret(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name, None))
        elif isinstance(value, (list, tuple, set, frozenset)):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(model)
