"""A small sliding-window limiter for logins."""

from __future__ import annotations

import time
from collections import deque


class SlidingWindow:
    """At most `limit` events per key within `window_s` seconds."""

    def __init__(self, limit: int, window_s: float, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self._max_keys = max_keys
        self._events: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        """Record an attempt; False when the key is over its limit."""
        now = time.monotonic()
        if len(self._events) > self._max_keys:  # bounded memory under a spray of usernames
            self._events.clear()
        q = self._events.setdefault(key, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        if len(q) >= self.limit:
            return False
        q.append(now)
        return True

    def reset(self, key: str) -> None:
        """Forget a key (after a successful login)."""
        self._events.pop(key, None)
