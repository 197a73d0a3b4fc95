"""IANA time zone names (``Europe/Paris``, ``UTC``), checked against the time zone database.

Used by camera-config (a camera's own zone) and by the captioner's settings (the zone of cameras
that do not name one). The check opens the zone's file in the system's (or the ``tzdata``
package's) database: a local read, the one way to know a name is real.
"""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, StringConstraints


def check_time_zone(name: str) -> str:
    """``name`` if the time zone database knows it; ValueError naming it otherwise."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(
            f"unknown time zone {name!r}: expected an IANA name such as 'Europe/Paris', "
            "'America/New_York' or 'UTC'"
        ) from exc
    return name


#: An IANA time zone name the database knows, e.g. ``Europe/Paris``.
TimeZoneName = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$"
    ),
    AfterValidator(check_time_zone),
]
