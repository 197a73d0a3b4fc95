"""The compiled rules of every camera, from the rules file and the compacted camera-config topic.

:class:`RuleBook` answers ``rules_for(camera_id)`` for every detections message (a dict lookup),
so configs are parsed and compiled once, when they change, never per frame. A config on the topic
replaces the file's config for that camera; a tombstone (null value) brings the file's back. A
config that does not parse, or names a class the detector cannot produce, is logged with the
camera and the field, counted, and the camera keeps its previous rules.

:class:`ConfigFollower` (vsa.runtime.camera_configs, the one follower of the topic that every
service uses; re-exported here for the tracker's service) feeds :meth:`RuleBook.apply_record`
from the topic's beginning; its ``wait_synced`` tells the service when every partition has been
read to its end at least once, so the first frames are tracked with the rules that were already
there. (A Faust GlobalTable fed by another writer than the app itself does not reliably reach
every worker: robinhood/faust#541, #716.)
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Collection
from pathlib import Path

from vsa.runtime.camera_configs import ConfigFollower as ConfigFollower
from vsa.runtime.logs import event
from vsa.runtime.settings import ConfigError
from vsa.schemas import CameraConfig, SchemaError

from .rules import Anchor, CameraRules, RuleConfigError, compile_rules, load_camera_configs

log = logging.getLogger("vsa.tracker.rules")


class RuleBook:
    """Thread-safe camera_id → compiled rules (the follower thread writes, the worker reads).

    Args:
        known_classes: class names rules may use; None skips the check.
        anchor: box point tested against zones and lines.
        keyframe_interval_s: overrides every camera's periodic keyframe interval (seconds;
            0 = off); None keeps each camera's own.
        on_invalid: called with the camera_id of each refused config (a metric).
    """

    def __init__(
        self,
        known_classes: Collection[str] | None,
        anchor: Anchor = "center",
        keyframe_interval_s: float | None = None,
        on_invalid: Callable[[str], None] | None = None,
    ) -> None:
        self.known_classes = None if known_classes is None else frozenset(known_classes)
        self.anchor: Anchor = anchor
        self.keyframe_interval_s = keyframe_interval_s
        self.on_invalid = on_invalid
        self._file: dict[str, CameraRules] = {}
        self._topic: dict[str, CameraRules] = {}
        self._merged: dict[str, CameraRules] = {}
        self._lock = threading.Lock()

    def rules_for(self, camera_id: str) -> CameraRules | None:
        """The camera's rules, or None (tracked without rules, no periodic keyframes)."""
        return self._merged.get(camera_id)  # a dict read is atomic; the dict is replaced whole

    def load_file(self, path: Path) -> int:
        """Compile every camera of a rules file; ConfigError (file, camera, field) if any is bad."""
        try:
            configs = load_camera_configs(path)
            compiled = {c.camera_id: self.compile(c) for c in configs}
        except RuleConfigError as exc:
            raise ConfigError(f"{path}: {exc}" if str(path) not in str(exc) else str(exc)) from exc
        with self._lock:
            self._file.update(compiled)
            self._merge()
        return len(compiled)

    def compile(self, config: CameraConfig) -> CameraRules:
        """Compile one config with this book's classes, anchor and keyframe override."""
        rules = compile_rules(config, self.known_classes, self.anchor)
        if self.keyframe_interval_s is not None:
            rules = dataclasses.replace(rules, keyframe_interval_s=self.keyframe_interval_s)
        return rules

    def apply_record(self, key: bytes | None, value: bytes | None, partition: int = 0) -> None:
        """Apply one camera-config record: a config, or a tombstone (value None).

        ``partition`` is unused: the book keeps every camera, whichever partition it is in."""
        camera_id = (key or b"").decode("utf-8", "replace")
        if value is None:
            with self._lock:
                self._topic.pop(camera_id, None)
                self._merge()
            event(log, "camera_config_removed", camera_id=camera_id)
            return
        try:
            config = CameraConfig.from_bytes(value)
            rules = self.compile(config)
        except (SchemaError, RuleConfigError) as exc:
            event(log, "camera_config_invalid", logging.ERROR, camera_id=camera_id, error=str(exc))
            if self.on_invalid is not None:
                self.on_invalid(camera_id)
            return
        if key is not None and config.camera_id != camera_id:
            event(
                log,
                "camera_config_key_mismatch",
                logging.WARNING,
                camera_id=config.camera_id,
                key=camera_id,
            )
        with self._lock:
            self._topic[config.camera_id] = rules
            self._merge()
        event(log, "camera_config_applied", camera_id=config.camera_id, rules=len(rules.rules))

    def _merge(self) -> None:
        self._merged = {**self._file, **self._topic}

    def cameras(self) -> list[str]:
        """Cameras that have rules now."""
        return sorted(self._merged)
