"""Login throttling: backoff per (user, address), a cap per address and a slowdown per user; bounded memory."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")
Clock = Callable[[], float]


class Recent(Generic[K, V]):
    """A dict of at most `max_keys` entries that forgets the least recently touched one first."""

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The entry, now the most recently touched; None when absent."""
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        """Store an entry, evicting the oldest ones beyond the bound."""
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.max_keys:
            # Only the stalest counters go: wiping all of them would hand a sprayer a fresh start.
            self._items.popitem(last=False)

    def pop(self, key: K) -> None:
        """Forget an entry."""
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


class SlidingWindow:
    """At most `limit` events per key within `window_s` seconds; memory bounded by evicting the oldest keys."""

    def __init__(self, limit: int, window_s: float, max_keys: int = 10_000, clock: Clock = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._events: Recent[str, deque[float]] = Recent(max_keys)

    def allow(self, key: str) -> bool:
        """Record an attempt; False when the key is over its limit."""
        now = self._clock()
        q = self._events.get(key)
        if q is None:
            q = deque()
            self._events.put(key, q)
        while q and now - q[0] > self.window_s:
            q.popleft()
        if len(q) >= self.limit:
            return False
        q.append(now)
        return True

    def reset(self, key: str) -> None:
        """Forget a key."""
        self._events.pop(key)

    def __len__(self) -> int:
        return len(self._events)


@dataclass
class _Failures:
    count: int
    last: float


@dataclass(frozen=True)
class ThrottlePolicy:
    """The numbers behind login throttling."""

    free_failures: int = 5
    """Failures per (user, address) before backoff starts; a user who mistypes now and then never waits."""
    base_delay_s: float = 1.0
    """First backoff; it doubles with every further failure."""
    max_delay_s: float = 300.0
    """Longest backoff for one (user, address)."""
    forget_after_s: float = 900.0
    """A (user, address) or user without failures for this long starts afresh."""
    per_address_per_minute: int = 60
    """Attempts per client address per minute, whatever the usernames: stops spraying from one host."""
    slow_after: int = 20
    """Failures of one user, from all addresses, before each of their logins is slowed down."""
    slow_step_s: float = 0.1
    """Slowdown added per failure beyond `slow_after`."""
    slow_max_s: float = 2.0
    """Longest slowdown: a user under attack still gets in, a little later."""
    max_keys: int = 50_000
    """Counters kept per kind before the least recently used ones are forgotten."""


class LoginThrottle:
    """Decides whether a login attempt may proceed; no client can lock a user out from another address."""

    def __init__(self, policy: ThrottlePolicy | None = None, clock: Clock = time.monotonic) -> None:
        self.policy = policy or ThrottlePolicy()
        self._clock = clock
        self._pairs: Recent[tuple[str, str], _Failures] = Recent(self.policy.max_keys)
        self._users: Recent[str, _Failures] = Recent(self.policy.max_keys)
        self._addresses = SlidingWindow(self.policy.per_address_per_minute, 60.0, self.policy.max_keys, clock)

    def _live(self, table: Recent[K, _Failures], key: K) -> _Failures | None:
        entry = table.get(key)
        if entry is not None and self._clock() - entry.last > self.policy.forget_after_s:
            table.pop(key)
            return None
        return entry

    def retry_after(self, user: str, address: str) -> float | None:
        """Seconds this (user, address) must wait before trying again; None when the attempt may proceed."""
        p = self.policy
        entry = self._live(self._pairs, (user, address))
        if entry is not None and entry.count >= p.free_failures:
            wait = min(p.base_delay_s * 2 ** (entry.count - p.free_failures), p.max_delay_s)
            left = entry.last + wait - self._clock()
            if left > 0:
                return left
        if not self._addresses.allow(address):
            return 60.0
        return None

    def slowdown(self, user: str) -> float:
        """Seconds to hold every login of a user whose password is being guessed from many addresses."""
        p = self.policy
        entry = self._live(self._users, user)
        if entry is None:
            return 0.0
        return min(max(0, entry.count - p.slow_after) * p.slow_step_s, p.slow_max_s)

    def failed(self, user: str, address: str) -> None:
        """Count a wrong password."""
        self._bump(self._pairs, (user, address))
        self._bump(self._users, user)

    def _bump(self, table: Recent[K, _Failures], key: K) -> None:
        entry = self._live(table, key)
        table.put(key, _Failures((entry.count if entry else 0) + 1, self._clock()))

    def succeeded(self, user: str, address: str) -> None:
        """A correct password clears its (user, address) backoff; the user's slowdown fades with time."""
        self._pairs.pop((user, address))
