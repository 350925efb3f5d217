"""Hour-of-week activity baseline of one resident, and how it is smoothed into hourly probabilities."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hub.detection.home_events import DetectionError, HomeEvent, local_clock

HOURS_PER_WEEK = 168
_HOUR = timedelta(hours=1)


def hour_of_week(local: datetime) -> int:
    """Monday 00:00-00:59 is 0, Sunday 23:00-23:59 is 167 (same as SQL ``(isodow-1)*24 + hour``)."""
    return local.weekday() * 24 + local.hour


@dataclass(frozen=True, slots=True)
class HourStats:
    """Baseline of one hour of the week: mean events, share of observed weeks with any event, weeks seen."""

    hour_of_week: int
    mean_events: float
    share_active: float
    weeks_observed: int


@dataclass(frozen=True)
class ActivityProfile:
    """168 hour-of-week cells; hours the resident was away are not counted as observed."""

    hours: tuple[HourStats, ...]

    @property
    def history_days(self) -> float:
        """Days of at-home observation behind this profile."""
        return sum(h.weeks_observed for h in self.hours) / 24.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (compact rows)."""
        return {
            "hours": [
                [h.hour_of_week, round(h.mean_events, 4), round(h.share_active, 4), h.weeks_observed]
                for h in self.hours
            ]
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActivityProfile:
        """Inverse of :meth:`to_dict`."""
        try:
            return profile_from_counts(data["hours"])
        except (KeyError, TypeError) as err:
            raise DetectionError("activity profile dict has no usable 'hours'") from err


def _row_values(row: Sequence[Any] | Mapping[str, Any]) -> tuple[int, float, float, int]:
    if isinstance(row, Mapping):
        return (
            int(row["hour_of_week"]),
            float(row["mean_events"]),
            float(row["share_active"]),
            int(row.get("weeks_observed", 1)),
        )
    weeks = int(row[3]) if len(row) > 3 else 1
    return int(row[0]), float(row[1]), float(row[2]), weeks


def profile_from_counts(rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> ActivityProfile:
    """Build a profile from SQL rows ``(hour_of_week, mean_events, share_active, weeks_observed)``.

    Rows may be tuples or mappings with those keys; missing hours count as never observed.
    """
    cells = {h: HourStats(h, 0.0, 0.0, 0) for h in range(HOURS_PER_WEEK)}
    for row in rows:
        try:
            how, mean, share, weeks = _row_values(row)
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise DetectionError(f"bad profile row {row!r}") from err
        if not 0 <= how < HOURS_PER_WEEK or not 0.0 <= share <= 1.0 or weeks < 0 or mean < 0:
            raise DetectionError(f"profile row out of range: {row!r}")
        cells[how] = HourStats(how, mean, share, weeks)
    return ActivityProfile(tuple(cells[h] for h in range(HOURS_PER_WEEK)))


class OnlineProfileLearner:
    """Accumulates hourly event counts as a replay goes, so the profile never sees the future."""

    def __init__(self) -> None:
        self._counts: dict[datetime, int] = {}
        self._away: set[datetime] = set()
        self._start: datetime | None = None

    @staticmethod
    def _bucket(local: datetime) -> datetime:
        return local.replace(minute=0, second=0, microsecond=0)

    def add(self, local: datetime, is_activity: bool = True) -> None:
        """Count one event at naive local time ``local``."""
        bucket = self._bucket(local)
        if self._start is None or bucket < self._start:
            self._start = bucket
        if is_activity:
            self._counts[bucket] = self._counts.get(bucket, 0) + 1

    def mark_away(self, local: datetime) -> None:
        """Exclude the hour containing ``local``: silence while away says nothing about habits at home."""
        self._away.add(self._bucket(local))

    def profile(self, until_local: datetime) -> ActivityProfile:
        """Profile of all complete hours from the first event up to ``until_local``."""
        totals = [0] * HOURS_PER_WEEK
        active = [0] * HOURS_PER_WEEK
        weeks = [0] * HOURS_PER_WEEK
        if self._start is not None:
            bucket = self._start
            end = self._bucket(until_local)
            while bucket < end:
                if bucket not in self._away:
                    how = hour_of_week(bucket)
                    count = self._counts.get(bucket, 0)
                    weeks[how] += 1
                    totals[how] += count
                    active[how] += count > 0
                bucket += _HOUR
        return ActivityProfile(
            tuple(
                HourStats(h, totals[h] / weeks[h], active[h] / weeks[h], weeks[h])
                if weeks[h]
                else HourStats(h, 0.0, 0.0, 0)
                for h in range(HOURS_PER_WEEK)
            )
        )


def profile_from_events(
    events: Iterable[HomeEvent],
    *,
    until: datetime | None = None,
    away: Iterable[tuple[datetime, datetime]] = (),
    timezone: str | None = None,
) -> ActivityProfile:
    """Learn a profile in Python (replay, tests) from events; ``away`` intervals are left out."""
    learner = OnlineProfileLearner()
    last: datetime | None = None
    for event in events:
        local = local_clock(event.ts, timezone)
        learner.add(local, event.is_activity)
        last = local if last is None or local > last else last
    for start, end in away:
        t = local_clock(start, timezone)
        stop = local_clock(end, timezone)
        while t < stop:
            learner.mark_away(t)
            t += _HOUR
        learner.mark_away(stop)
    if until is not None:
        horizon = local_clock(until, timezone)
    elif last is not None:
        horizon = last + _HOUR
    else:
        return profile_from_counts([])
    return learner.profile(horizon)


@functools.lru_cache(maxsize=64)
def _cold_start(prior: tuple[float, ...], cap: float, floor: float) -> tuple[float, ...]:
    # One shared tuple per configuration: the live hub builds a monitor for every new resident.
    return tuple(min(cap, max(floor, p)) for p in prior)


def hourly_activity(
    profile: ActivityProfile | None,
    prior: Sequence[float],
    *,
    min_history_days: float,
    cap: float,
    floor: float = 0.02,
    strength: float = 2.0,
    trust_days: float | None = None,
    eager_from_days: float | None = None,
) -> tuple[Sequence[float], bool]:
    """Probability of at least one event in each hour of the week, and whether it was learned.

    Cold start (less than ``min_history_days`` at home) returns the prior. Otherwise each
    hour-of-week cell is shrunk towards its hour-of-day average, which is shrunk towards the prior,
    so one odd week cannot make an hour look always busy or always quiet. With ``trust_days``, a
    learned hour busier than the prior (a faster alarm) moves away from the prior only by the
    weight (days - eager_from) / (trust_days - eager_from), clipped to [0, 1], eager_from being
    ``eager_from_days`` (default ``min_history_days``): a baseline must be weeks old before it is
    more eager than the defaults. Quieter hours (a slower alarm) are taken as learned.
    """
    if len(prior) != HOURS_PER_WEEK:
        raise DetectionError("prior must have 168 hourly values")
    if profile is None or profile.history_days < min_history_days:
        return _cold_start(tuple(prior), cap, floor), False
    probs = _learned(profile, prior, cap, floor, strength)
    if trust_days is not None:
        eager_from = min_history_days if eager_from_days is None else eager_from_days
        span = trust_days - eager_from
        weight = 1.0 if span <= 0 else min(1.0, max(0.0, (profile.history_days - eager_from) / span))
        probs = [
            min(cap, max(floor, base + weight * (p - base))) if p > base else p
            for p, base in zip(probs, prior, strict=True)
        ]
    return probs, True


def _learned(
    profile: ActivityProfile, prior: Sequence[float], cap: float, floor: float, strength: float
) -> list[float]:
    """Hour-of-week probabilities shrunk towards hour of day, then towards the prior."""
    by_hour: list[tuple[float, int]] = []
    for hod in range(24):
        cells = [profile.hours[day * 24 + hod] for day in range(7)]
        by_hour.append(
            (sum(c.share_active * c.weeks_observed for c in cells), sum(c.weeks_observed for c in cells))
        )
    probs: list[float] = []
    for cell in profile.hours:
        active, seen = by_hour[cell.hour_of_week % 24]
        p_hod = (active + strength * prior[cell.hour_of_week]) / (seen + strength)
        p_how = (cell.share_active * cell.weeks_observed + strength * p_hod) / (
            cell.weeks_observed + strength
        )
        probs.append(min(cap, max(floor, p_how)))
    return probs
