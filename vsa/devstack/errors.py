"""The one exception the local stack raises for problems a person has to fix."""

from __future__ import annotations


class DevstackError(RuntimeError):
    """The stack cannot be fetched, started, reached or stopped; the message says what to do."""
