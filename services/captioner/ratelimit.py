"""Per-camera caption rate limit: a token bucket refilled at ``per_minute`` captions a minute."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CameraRateLimit:
    """Allows ``per_minute`` captions a minute per camera, with bursts up to ``burst``.

    Time comes from the keyframes' capture timestamps (seconds), not the wall clock, so a replay
    or a backlog is limited the same way as live traffic. ``per_minute <= 0`` disables the limit.
    """

    per_minute: float
    burst: int = 3
    _tokens: dict[str, float] = field(default_factory=dict)
    _last_ts: dict[str, float] = field(default_factory=dict)

    def allow(self, camera_id: str, ts: float) -> bool:
        """Take a token for one caption of ``camera_id`` at time ``ts`` if one is left."""
        if self.per_minute <= 0:
            return True
        last = self._last_ts.get(camera_id)
        tokens = float(self.burst) if last is None else self._tokens[camera_id]
        if last is not None and ts > last:
            tokens = min(float(self.burst), tokens + (ts - last) * self.per_minute / 60)
        self._last_ts[camera_id] = max(ts, last or ts)
        if tokens >= 1:
            self._tokens[camera_id] = tokens - 1
            return True
        self._tokens[camera_id] = tokens
        return False
