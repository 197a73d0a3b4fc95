"""The webhook sink: one HTTP POST of an alert's JSON per attempt (the core retries).

Request: ``POST <url>`` with ``Content-Type: application/json``, the body exactly as the alerts
topic carries it (the ``Alert`` model), ``X-Vsa-Alert-Id`` (deterministic: a redelivered alert
has the same id, so a receiver can drop repeats) and ``X-Vsa-Camera-Id``; with a token,
``Authorization: Bearer <token>``; user:password in the URL becomes basic authentication.
Redirects are not followed (a 3xx is a failed delivery, not retried).

The URL is a secret (webhook URLs often carry a token in their path): messages name only
:attr:`WebhookSink.endpoint`, scheme://host:port.
"""

from __future__ import annotations

import base64
import http.client
import ssl
from urllib.parse import unquote, urlsplit

from vsa import __version__
from vsa.schemas import Alert

from .config import WebhookSettings
from .core import Attempt, http_outcome

#: Bytes of a response body read (and dropped) so the connection closes cleanly.
MAX_RESPONSE_BYTES = 64 * 1024


class WebhookSink:
    """POSTs alerts to ``settings.url`` (which must be set)."""

    name = "webhook"

    def __init__(self, settings: WebhookSettings) -> None:
        if settings.url is None:
            raise ValueError("webhook.url is not set")
        parts = urlsplit(settings.url.get_secret_value())
        self.settings = settings
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.endpoint = f"{parts.scheme}://{self._host}:{self._port}"
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": f"vsa-notifier/{__version__}",
        }
        if settings.token is not None:
            self._headers["Authorization"] = f"Bearer {settings.token.get_secret_value()}"
        elif parts.username is not None:
            user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            basic = base64.b64encode(user_pass.encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {basic}"
        self._tls = self._tls_context() if self._https else None

    def _tls_context(self) -> ssl.SSLContext:
        if not self.settings.verify_tls:
            return ssl._create_unverified_context()  # noqa: S323  # the user turned it off
        cafile = str(self.settings.ca_certs) if self.settings.ca_certs else None
        return ssl.create_default_context(cafile=cafile)

    def _connection(self) -> http.client.HTTPConnection:
        timeout = self.settings.timeout_s
        if self._tls is not None:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._tls
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def send(self, alert: Alert, body: bytes) -> Attempt:
        """One POST; the attempt's outcome from the status, or 'retry' when the server did not
        answer (refused, reset, timed out)."""
        headers = {
            **self._headers,
            "X-Vsa-Alert-Id": alert.alert_id,
            "X-Vsa-Camera-Id": alert.camera_id,
        }
        connection = self._connection()
        try:
            connection.request("POST", self._target, body=body, headers=headers)
            response = connection.getresponse()
            response.read(MAX_RESPONSE_BYTES)
        except TimeoutError:
            return Attempt("retry", f"no answer within {self.settings.timeout_s:g} s")
        except (OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            return Attempt("retry", f"connection failed: {reason}")
        finally:
            connection.close()
        status = response.status
        return Attempt(http_outcome(status), f"HTTP {status} {response.reason}".strip())
