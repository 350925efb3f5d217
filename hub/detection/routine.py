"""Daily-routine rules: not up in the morning, night door, long bathroom stay, missed check-in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hub.detection.home_events import (
    AlertTrigger,
    HomeEvent,
    at_local,
    in_daily_window,
    iso_or_none,
    minutes,
    parse_iso_or_none,
)

_BATHROOM_WORDS = ("bath", "toilet", "wc", "restroom", "shower")


class RoutineConfig(BaseModel):
    """Settings of the routine rules; times are the resident's local wall clock."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wake_time: time | None = Field(
        default=None,
        title="Wake time",
        description="Usual time the resident is up; None learns it from the profile (or uses the default).",
    )
    default_wake_time: time = Field(
        default=time(8, 0), title="Default wake time", description="Used until the profile is learned."
    )
    wake_margin_min: float = Field(
        default=60.0,
        ge=0,
        title="Wake margin",
        description="Minutes after the wake time before no_morning_activity.",
    )
    morning_from: time = Field(
        default=time(4, 0),
        title="Morning starts",
        description="Activity after this time counts as getting up.",
    )
    wandering_risk: bool = Field(
        default=False,
        title="Wandering risk",
        description="Dementia/wandering flag: exit doors at night alert.",
    )
    night_door_gap_min: float = Field(
        default=15.0,
        gt=0,
        title="Night door episode",
        description="Door openings closer than this are one episode.",
    )
    bathroom_rooms: tuple[str, ...] | None = Field(
        default=None,
        title="Bathroom rooms",
        description="Room names that are bathrooms; None means names containing bath/toilet/wc/shower.",
    )
    bathroom_max_min: float = Field(
        default=60.0,
        gt=0,
        title="Bathroom maximum",
        description="Minutes in a bathroom before long_bathroom.",
    )
    checkin_deadline: time | None = Field(
        default=None,
        title="Check-in deadline",
        description="Daily wristband check-in due by then; None disables.",
    )
    checkin_from: time = Field(
        default=time(0, 0),
        title="Check-in window start",
        description="Check-ins after this time count for the day.",
    )


def learned_wake_time(probs: Sequence[float], weekday: int, earliest_hour: int = 4) -> time | None:
    """End of the first hour from ``earliest_hour`` in which the resident is usually (p >= 0.5) active."""
    for hod in range(earliest_hour, 12):
        if probs[weekday * 24 + hod] >= 0.5:
            return time(hod + 1, 0)
    return None


class RoutineDetector:
    """The four routine rules with their per-episode state."""

    def __init__(self, cfg: RoutineConfig, sleep_start: time, sleep_end: time) -> None:
        self.cfg = cfg
        self.sleep_start = sleep_start
        self.sleep_end = sleep_end
        self._probs: Sequence[float] | None = None
        self.watching_since: datetime | None = None
        self.morning_done: date | None = None
        self.morning_fired: date | None = None
        self.last_night_door: datetime | None = None
        self.bath_entry: datetime | None = None
        self.bath_room = ""
        self.bath_fired = False
        self.checkin_done: date | None = None
        self.checkin_fired: date | None = None

    def set_hourly_activity(self, probs: Sequence[float], learned: bool) -> None:
        """Use learned hourly probabilities for the wake time (ignored until learned)."""
        self._probs = probs if learned else None

    def is_bathroom(self, room: str) -> bool:
        """True when ``room`` is a bathroom for this resident."""
        if self.cfg.bathroom_rooms is not None:
            return room in self.cfg.bathroom_rooms
        lowered = room.lower()
        return any(word in lowered for word in _BATHROOM_WORDS)

    def wake_deadline(self, day: date) -> datetime:
        """Local time by which some activity is expected on ``day``."""
        wake = self.cfg.wake_time
        if wake is None and self._probs is not None:
            # Searched from the end of the sleep window: a restless sleeper's night motion is not waking.
            wake = learned_wake_time(self._probs, day.weekday(), max(4, min(11, self.sleep_end.hour)))
        if wake is None:
            wake = self.cfg.default_wake_time
        return at_local(day, wake) + timedelta(minutes=self.cfg.wake_margin_min)

    def _watch(self, ts: datetime) -> None:
        if self.watching_since is None or ts < self.watching_since:
            self.watching_since = ts

    def observe(self, ev: HomeEvent, local: datetime, at_home: bool) -> list[AlertTrigger]:
        """Update routine state from one event; night_door fires here, at the event."""
        self._watch(local)
        if not ev.is_activity:
            return []
        if ev.kind == "checkin":
            if local.time() >= self.cfg.checkin_from:
                self.checkin_done = local.date()
            return []
        if local.time() >= self.cfg.morning_from:
            self.morning_done = local.date()
        out: list[AlertTrigger] = []
        if ev.exit:
            self.bath_entry = None
            if self._night_door(ev, local):
                out.append(
                    AlertTrigger(
                        "night_door", "high", ev.ts, {"sensor": ev.sensor, "room": ev.room, "state": ev.state}
                    )
                )
            return out
        if self.is_bathroom(ev.room) and at_home:
            if ev.kind not in ("motion", "door"):
                # A flush or an appliance says someone passed; only motion or a door shows a stay.
                return out
            if self.bath_entry is None:
                self.bath_entry = ev.ts
                self.bath_room = ev.room
                self.bath_fired = False
        else:
            self.bath_entry = None
        return out

    def _night_door(self, ev: HomeEvent, local: datetime) -> bool:
        if not self.cfg.wandering_risk or ev.kind != "door" or ev.state == "closed":
            return False
        if not in_daily_window(local.time(), self.sleep_start, self.sleep_end):
            return False
        gap = timedelta(minutes=self.cfg.night_door_gap_min)
        fresh = self.last_night_door is None or ev.ts - self.last_night_door >= gap
        self.last_night_door = ev.ts
        return fresh

    def tick(
        self, now: datetime, local: datetime, at_home: bool, inactivity_active: bool, elsewhere: bool = False
    ) -> list[AlertTrigger]:
        """Time-driven rules: morning, bathroom, check-in; ``elsewhere``: a bed or seat outside is occupied."""
        self._watch(local)
        out: list[AlertTrigger] = []
        today = local.date()
        if not at_home or elsewhere:
            self.bath_entry = None
        if at_home and (
            today not in (self.morning_done, self.morning_fired)
            and not inactivity_active
            and self.watching_since is not None
            and self.watching_since <= at_local(today, self.cfg.morning_from)
        ):
            deadline = self.wake_deadline(today)
            if local >= deadline:
                self.morning_fired = today
                out.append(
                    AlertTrigger(
                        "no_morning_activity",
                        "high",
                        now,
                        {
                            "deadline": deadline.time().isoformat("minutes"),
                            "learned": self._probs is not None,
                        },
                    )
                )
        if at_home and self.bath_entry is not None and not self.bath_fired:
            stay = minutes(now - self.bath_entry)
            if stay >= self.cfg.bathroom_max_min:
                self.bath_fired = True
                out.append(
                    AlertTrigger(
                        "long_bathroom", "high", now, {"room": self.bath_room, "stay_min": round(stay)}
                    )
                )
        deadline_t = self.cfg.checkin_deadline
        if (
            deadline_t is not None
            and local.time() >= deadline_t
            and today not in (self.checkin_done, self.checkin_fired)
            and self.watching_since is not None
            and self.watching_since <= at_local(today, self.cfg.checkin_from)
        ):
            self.checkin_fired = today
            out.append(
                AlertTrigger("missed_checkin", "medium", now, {"deadline": deadline_t.isoformat("minutes")})
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""

        def day(d: date | None) -> str | None:
            return None if d is None else d.isoformat()

        return {
            "watching_since": iso_or_none(self.watching_since),
            "morning_done": day(self.morning_done),
            "morning_fired": day(self.morning_fired),
            "last_night_door": iso_or_none(self.last_night_door),
            "bath_entry": iso_or_none(self.bath_entry),
            "bath_room": self.bath_room,
            "bath_fired": self.bath_fired,
            "checkin_done": day(self.checkin_done),
            "checkin_fired": day(self.checkin_fired),
        }

    def load(self, data: dict[str, Any]) -> None:
        """Restore state written by :meth:`to_dict`."""

        def day(value: Any) -> date | None:
            return None if value is None else date.fromisoformat(str(value))

        self.watching_since = parse_iso_or_none(data["watching_since"])
        self.morning_done = day(data["morning_done"])
        self.morning_fired = day(data["morning_fired"])
        self.last_night_door = parse_iso_or_none(data["last_night_door"])
        self.bath_entry = parse_iso_or_none(data["bath_entry"])
        self.bath_room = str(data["bath_room"])
        self.bath_fired = bool(data["bath_fired"])
        self.checkin_done = day(data["checkin_done"])
        self.checkin_fired = day(data["checkin_fired"])
