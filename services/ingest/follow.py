"""Which cameras an ingest replica should run, from camera-config: pure logic, no Kafka.

:func:`desired_cameras` turns the configs this replica owns into camera specs, and
:func:`plan` compares them with the running cameras: cameras to start, to stop, and to restart
with new settings. The runner (:mod:`vsa.services.ingest.fleet`) carries the plan out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from vsa.runtime.logs import event
from vsa.schemas import CameraConfig
from vsa.services.ingest.config import CameraSpec

log = logging.getLogger("vsa.ingest.follow")


@dataclass(frozen=True)
class Plan:
    """What to do to make the running cameras match the desired ones (camera_ids, sorted)."""

    start: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.start or self.stop or self.restart)


def camera_spec(config: CameraConfig) -> CameraSpec | None:
    """The spec ingest runs for ``config``; None when disabled, without source or unusable.

    A file or image folder is a simulated camera: it loops, paced at its own rate, so it behaves
    like the live stream it stands for. ``fps_target`` is the sampling rate (None: every frame).
    """
    if not config.enabled or config.source_url is None:
        return None
    try:
        spec = CameraSpec(camera_id=config.camera_id, url=config.source_url, fps=config.fps_target)
    except ValidationError as exc:
        event(
            log,
            "camera_config_unusable",
            logging.ERROR,
            camera_id=config.camera_id,
            error=str(exc).replace("\n", " "),
        )
        return None
    if spec.kind == "live":
        return spec
    return spec.model_copy(update={"loop": True, "realtime": True})


def desired_cameras(configs: Mapping[str, CameraConfig]) -> dict[str, CameraSpec]:
    """Specs of the enabled cameras that have a ``source_url``, by camera_id."""
    specs = {camera_id: camera_spec(config) for camera_id, config in configs.items()}
    return {camera_id: spec for camera_id, spec in specs.items() if spec is not None}


def plan(desired: Mapping[str, CameraSpec], running: Mapping[str, CameraSpec]) -> Plan:
    """Start what is desired but not running, stop what runs but is not desired, and restart
    what runs with other settings (a changed ``source_url`` or ``fps_target``). Cameras that
    match are left alone."""
    return Plan(
        start=tuple(sorted(desired.keys() - running.keys())),
        stop=tuple(sorted(running.keys() - desired.keys())),
        restart=tuple(
            sorted(c for c in desired.keys() & running.keys() if desired[c] != running[c])
        ),
    )
