"""Clocks for the escalation engine: wall-clock UTC in production, a hand-driven clock in tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Wall-clock UTC."""
    return datetime.now(UTC)


class FakeClock:
    """A clock that only moves when told to; call it like `system_clock`.

    `start` defaults to the current wall-clock time so rows the database stamps with `now()` are
    comparable with it.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or system_clock()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        """Move forward by `seconds`; returns the new time."""
        self.now += timedelta(seconds=seconds)
        return self.now
