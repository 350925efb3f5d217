"""Per-device token buckets: one flooding device is shed at the door, and cannot slow another's SOS."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

# Devices whose shed count is reported by name; beyond it they are summed as "other" (bounded /health).
REPORTED_DEVICES = 1000
_MAX_BUCKETS = 200_000  # more than the largest fleet; a flood of distinct topics cannot grow memory forever


@dataclass(frozen=True)
class RateLimits:
    """Bucket sizes: every message of a device draws on `rate`/`burst`; each alarm kind has its own bucket.

    rate, burst: sustained messages per second per device, and how many may come at once.
    urgent_rate, urgent_burst: the same per (device, alarm kind) for SOS, fall, alarm and check-in, so a
        device flooding `alarm` still gets its first SOS through at once. Alarms beyond it collapse
        (acknowledged and counted): the first ones have raised the alert already.
    """

    rate: float = 50.0
    burst: float = 500.0
    urgent_rate: float = 1.0
    urgent_burst: float = 10.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


@dataclass
class DeviceLimiter:
    """Admits or sheds one message at a time: a bucket per device, and one per (device, alarm topic)."""

    limits: RateLimits = field(default_factory=RateLimits)
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def admit(self, device: str, topic: str, urgent: bool) -> bool:
        """True to take the message; False: shed it (telemetry) or collapse it (a repeated alarm)."""
        if urgent:
            return self._take(topic, self.limits.urgent_rate, self.limits.urgent_burst)
        return self._take(device, self.limits.rate, self.limits.burst)

    def _take(self, key: str, rate: float, burst: float) -> bool:
        now = self.clock()
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                # The least recently used bucket goes, not all of them: that quiet device starts again full
                # (errs on admitting), while a flooding device, always the most recent, keeps its empty one.
                del self._buckets[next(iter(self._buckets))]
            bucket = _Bucket(burst, now)
        else:
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
        self._buckets[key] = bucket  # re-inserted last: the dict's order is least to most recently used
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False


def device_key(topic: str, z2m_base: str) -> str:
    """What identifies the sending device in a topic: `<root>/<type>/<id>`, or a zigbee2mqtt device's topic."""
    if z2m_base and topic.startswith(z2m_base + "/"):
        return topic.removesuffix("/availability")
    return topic.rpartition("/")[0]
