"""Silence at home beyond the resident's normal, and whether the resident is home or away."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from datetime import datetime, time, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hub.detection.activity_profile import HOURS_PER_WEEK, hour_of_week
from hub.detection.home_events import (
    AlertTrigger,
    HomeEvent,
    in_daily_window,
    iso_or_none,
    local_clock,
    minutes,
    parse_iso_or_none,
    room_role,
)

# Rooms where an item held "on" is a seat or bed mat with someone on it; elsewhere it is an
# appliance running (a dishwasher, say), which says nothing about the resident.
SEATING_ROLES = frozenset({"living", "bedroom"})


class PresenceConfig(BaseModel):
    """How leaving and coming back are inferred from exit doors or entrance-area motion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    away_confirm_min: float = Field(
        default=15.0,
        gt=0,
        title="Away confirmation",
        description="Minutes after the last exit event without sustained activity inside before 'away'.",
    )
    return_window_min: float = Field(
        default=10.0,
        gt=0,
        title="Return window",
        description="Window (minutes) in which activity counts as sustained, or follows an exit door.",
    )
    return_min_events: int = Field(
        default=3, ge=1, title="Return events", description="Activity events inside needed within the window."
    )
    return_min_sensors: int = Field(
        default=2,
        ge=1,
        title="Return sensors",
        description="Distinct inside sensors needed within the window.",
    )
    not_home_after: time = Field(
        default=time(22, 0),
        title="Not home after",
        description="Local time from which being away raises not_home.",
    )
    not_home_until: time = Field(
        default=time(5, 0),
        title="Not home until",
        description="End of the not_home window; early-morning walks after it are normal.",
    )


class InactivityConfig(BaseModel):
    """Bounds and statistics of the silence alarm."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_silence_min: float = Field(
        default=45.0, gt=0, title="Minimum silence", description="Never alert on a silence shorter than this."
    )
    max_silence_awake_min: float = Field(
        default=180.0,
        gt=0,
        title="Maximum silence awake",
        description="Always alert after this much silence in waking hours, whatever the profile says.",
    )
    max_silence_sleep_min: float = Field(
        default=600.0,
        gt=0,
        title="Maximum silence asleep",
        description="Same bound for time inside the sleep window or while the bed reports occupied.",
    )
    surprise_alpha: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        title="Surprise level",
        description="Alert when a silence this long would happen with at most this probability normally.",
    )
    min_history_days: float = Field(
        default=7.0,
        ge=0,
        title="Cold start",
        description="Days at home needed before the learned profile is used.",
    )
    default_awake_activity: float = Field(
        default=0.9,
        gt=0,
        lt=1,
        title="Default awake activity",
        description="Cold-start probability of any event in a waking hour.",
    )
    default_sleep_activity: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        title="Default sleep activity",
        description="Cold-start probability of any event in an hour of the sleep window.",
    )
    eager_from_days: float = Field(
        default=14.0,
        ge=0,
        title="Eager from",
        description="Days at home before the learned profile may alarm sooner than the defaults.",
    )
    trust_days: float = Field(
        default=28.0,
        gt=0,
        title="Full trust",
        description="Days at home after which the learned profile may be as eager as it likes; from"
        " eager_from_days to here its weight grows linearly.",
    )
    sparse_awake_activity: float = Field(
        default=0.7,
        gt=0,
        lt=1,
        title="Sparse default awake activity",
        description="Cold-start waking-hour activity in a home whose sensors are only doors and items.",
    )
    sparse_max_silence_awake_min: float = Field(
        default=180.0,
        gt=0,
        title="Sparse maximum silence awake",
        description="Waking-hour bound in a home without motion sensors: doors and items report rarely.",
    )
    max_hourly_activity: float = Field(
        default=0.95,
        gt=0,
        lt=1,
        title="Activity cap",
        description="Learned hourly probabilities are capped here: quiet hours cluster (naps, TV).",
    )


@functools.lru_cache(maxsize=256)
def default_prior(
    cfg: InactivityConfig, sleep_start: time, sleep_end: time, sparse: bool = False
) -> tuple[float, ...]:
    """Cold-start hourly activity probabilities: busy waking hours, quiet sleep window."""
    # Cached: the live hub builds one monitor per resident, nearly all with the same settings.
    awake = cfg.sparse_awake_activity if sparse else cfg.default_awake_activity
    prior = []
    for how in range(HOURS_PER_WEEK):
        mid = time(how % 24, 30)
        asleep = in_daily_window(mid, sleep_start, sleep_end)
        prior.append(cfg.default_sleep_activity if asleep else awake)
    return tuple(prior)


@functools.lru_cache(maxsize=64)
def _shared_rates(probs: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(-math.log(1.0 - p) for p in probs)


def _rates(probs: Sequence[float]) -> Sequence[float]:
    """Hourly event rates from probabilities; cold-start tuples (shared per configuration) computed once."""
    return _shared_rates(probs) if isinstance(probs, tuple) else [-math.log(1.0 - p) for p in probs]


class PresenceTracker:
    """Home/away state from exit doors or entrance-area motion; raises not_home late at night."""

    def __init__(self, cfg: PresenceConfig) -> None:
        self.cfg = cfg
        self.away = False
        self.away_since: datetime | None = None
        self.pending_exit: datetime | None = None
        self.pending_door = False
        self.last_door: datetime | None = None
        self.recent: list[tuple[datetime, str]] = []
        self.not_home_fired = False
        self.entered_at: datetime | None = None

    def _window(self) -> timedelta:
        return timedelta(minutes=self.cfg.return_window_min)

    def _confirm(self, now: datetime) -> None:
        if self.away or self.pending_exit is None:
            return
        if now - self.pending_exit >= timedelta(minutes=self.cfg.away_confirm_min):
            self.away = True
            self.away_since = self.pending_exit
            self.pending_exit = None

    def _back_home(self) -> None:
        self.away = False
        self.away_since = None
        self.pending_exit = None
        self.last_door = None
        self.recent.clear()
        self.not_home_fired = False

    def _sustained(self, ev: HomeEvent) -> bool:
        self.recent.append((ev.ts, ev.sensor))
        self.recent = [(ts, s) for ts, s in self.recent if ev.ts - ts <= self._window()]
        sensors = {s for _, s in self.recent}
        return len(self.recent) >= self.cfg.return_min_events and len(sensors) >= self.cfg.return_min_sensors

    def observe(self, ev: HomeEvent) -> None:
        """Update home/away from one event (checkins come from the wristband and say nothing about place)."""
        if not ev.is_activity or ev.kind == "checkin":
            return
        self._confirm(ev.ts)
        if ev.exit:
            if ev.kind == "door":
                if self.away:
                    # An exit door used while away means someone came in: the resident counts as home
                    # from the door on, so a fall just inside it is a silence at home, not an absence.
                    self._back_home()
                    self.entered_at = ev.ts
                    return
                if self.entered_at is not None and timedelta(0) <= ev.ts - self.entered_at <= self._window():
                    return  # the rest of the door cycle that brought them in is not a departure
                self.last_door = ev.ts
            if not self.away:
                self.pending_exit = ev.ts
                self.pending_door = ev.kind == "door"
                self.recent.clear()
            return
        self.entered_at = None  # activity inside: any later door is a new cycle
        if self.away:
            in_bed = ev.kind == "bed" and ev.state == "occupied"
            after_door = (
                self.last_door is not None and timedelta(0) <= ev.ts - self.last_door <= self._window()
            )
            if in_bed or after_door or self._sustained(ev):
                self._back_home()
            return
        if self.pending_exit is not None and (self.pending_door or self._sustained(ev)):
            # Motion inside after a door cycle means they stayed; after entrance-area motion only
            # sustained activity counts, because stray PIR events happen in empty homes.
            self.pending_exit = None
            self.recent.clear()

    def tick(self, now: datetime, local: datetime, wandering_risk: bool) -> list[AlertTrigger]:
        """Confirm a pending departure and raise not_home once per absence inside the night window."""
        self._confirm(now)
        if not self.away or self.not_home_fired:
            return []
        if not in_daily_window(local.time(), self.cfg.not_home_after, self.cfg.not_home_until):
            return []
        self.not_home_fired = True
        away_min = minutes(now - self.away_since) if self.away_since else 0.0
        return [
            AlertTrigger(
                "not_home",
                "high" if wandering_risk else "medium",
                now,
                {"away_min": round(away_min), "not_home_after": self.cfg.not_home_after.isoformat("minutes")},
            )
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "away": self.away,
            "away_since": iso_or_none(self.away_since),
            "pending_exit": iso_or_none(self.pending_exit),
            "pending_door": self.pending_door,
            "last_door": iso_or_none(self.last_door),
            "recent": [[ts.isoformat(), s] for ts, s in self.recent],
            "not_home_fired": self.not_home_fired,
            "entered_at": iso_or_none(self.entered_at),
        }

    def load(self, data: dict[str, Any]) -> None:
        """Restore state written by :meth:`to_dict`."""
        self.away = bool(data["away"])
        self.away_since = parse_iso_or_none(data["away_since"])
        self.pending_exit = parse_iso_or_none(data["pending_exit"])
        self.pending_door = bool(data["pending_door"])
        self.last_door = parse_iso_or_none(data["last_door"])
        self.recent = [(datetime.fromisoformat(ts), str(s)) for ts, s in data["recent"]]
        self.not_home_fired = bool(data["not_home_fired"])
        self.entered_at = parse_iso_or_none(data.get("entered_at"))


class SilenceDetector:
    """Raises one inactivity trigger per silence that is long and unusual for that time of the week.

    The silence since the last activity accumulates "surprise" -ln(1-p) per hour, p being the
    probability of any event in that hour of the week (learned or default), and a budget against
    the hard maximum (longer inside the sleep window or in bed). It alerts once the silence exceeds
    the minimum and either the surprise passes -ln(alpha) or the budget is spent.
    """

    def __init__(
        self, cfg: InactivityConfig, sleep_start: time, sleep_end: time, timezone: str | None
    ) -> None:
        self.cfg = cfg
        self.sleep_start = sleep_start
        self.sleep_end = sleep_end
        self.timezone = timezone
        self.last_activity: datetime | None = None
        self.last_sensor = ""
        self.last_room = ""
        self.fired = False
        self.bed_occupied: bool | None = None
        # Seat mats and other item sensors still reporting "on": someone is sitting or using them.
        self.held: dict[str, str] = {}  # sensor -> room
        # Homes with motion sensors report every few minutes; door/item-only homes get sparse bounds.
        self.motion_seen = False
        self.went_to_bed = False
        self.left_bed: datetime | None = None  # when the bed last went from occupied to empty
        self._rate = _rates(default_prior(cfg, sleep_start, sleep_end))
        self._prior_rate = self._rate
        self.learned = False

    def set_hourly_activity(self, probs: Sequence[float], learned: bool, prior: Sequence[float]) -> None:
        """Use new hourly activity probabilities (168 values) and the defaults they started from."""
        self._rate = _rates(probs)
        self._prior_rate = _rates(prior)
        self.learned = learned

    def _got_up_tonight(self, now: datetime) -> bool:
        """True when the bed reports empty after being left inside the last sleep window."""
        if self.bed_occupied is not False or self.left_bed is None:
            return False
        left = local_clock(self.left_bed, self.timezone)
        return now - self.left_bed <= timedelta(hours=12) and in_daily_window(
            left.time(), self.sleep_start, self.sleep_end
        )

    def held_outside(self, is_room: Callable[[str], bool]) -> bool:
        """True when a held item (a seat mat, say) lies in a room for which ``is_room`` is false."""
        if not self.held:  # the usual case, on every tick of every resident
            return False
        return any(not is_room(room) for room in self.held.values())

    @property
    def sparse(self) -> bool:
        """True until a motion sensor has reported: the home has only doors and items."""
        return not self.motion_seen

    def observe(self, ev: HomeEvent) -> None:
        """Note activity; a new activity ends the current silence episode."""
        if ev.kind == "motion":
            self.motion_seen = True
        if ev.kind == "bed":
            occupied = ev.state == "occupied"
            if self.bed_occupied is True and not occupied:
                self.left_bed = ev.ts
            self.bed_occupied = occupied
        elif ev.kind == "item" and room_role(ev.room) in SEATING_ROLES:
            if ev.state in ("on", "occupied"):
                self.held[ev.sensor] = ev.room
            else:
                self.held.pop(ev.sensor, None)
        if not ev.is_activity:
            return
        if self.last_activity is None or ev.ts >= self.last_activity:
            self.last_activity = ev.ts
            self.last_sensor = ev.sensor
            self.last_room = ev.room
            self.fired = False
            # Going to bed: the last activity is in a bedroom inside the sleep window (or a bed sensor).
            local = local_clock(ev.ts, self.timezone).time()
            # A home of doors and items never sees the bedroom: its last event of the night stands in.
            in_bedroom = self.sparse or room_role(ev.room) == "bedroom"
            self.went_to_bed = in_bedroom and in_daily_window(local, self.sleep_start, self.sleep_end)

    def scores(self, now: datetime) -> tuple[float, float]:
        """Surprise (nats) and spent fraction of the maximum-silence budget since the last activity."""
        if self.last_activity is None:
            return 0.0, 0.0
        t = local_clock(self.last_activity, self.timezone)
        end = local_clock(now, self.timezone)
        surprise = 0.0
        budget = 0.0
        awake_max = self.cfg.sparse_max_silence_awake_min if self.sparse else self.cfg.max_silence_awake_min
        got_up = self._got_up_tonight(now)
        while t < end:
            nxt = min(end, t.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))
            hours = (nxt - t).total_seconds() / 3600.0
            in_window = in_daily_window((t + (nxt - t) / 2).time(), self.sleep_start, self.sleep_end)
            if self.bed_occupied is True:
                # In bed is presence, not silence: free inside the sleep window; after it the
                # morning rule speaks first and only the long sleep bound applies here.
                if not in_window:
                    budget += hours * 60.0 / self.cfg.max_silence_sleep_min
            elif self.held or self.went_to_bed:
                # Seated on a mat, or gone to bed: the sleep bound judges it, never the profile, so a
                # restless sleeper's past nights cannot make a quiet one look unusual.
                budget += hours * 60.0 / self.cfg.max_silence_sleep_min
            else:
                how = hour_of_week(t)
                rate = self._rate[how]
                if in_window:
                    # Night hours can only be as eager as the defaults, whatever was learned.
                    rate = min(rate, self._prior_rate[how])
                surprise += hours * rate
                # Out of bed in the night (up from it, not yet gone to it) is as worrying as daytime.
                asleep = in_window and not got_up
                limit = self.cfg.max_silence_sleep_min if asleep else awake_max
                budget += hours * 60.0 / limit
            t = nxt
        return surprise, budget

    def tick(self, now: datetime, at_home: bool) -> AlertTrigger | None:
        """Return a trigger when the current silence (at home) has become alarming."""
        if self.fired or not at_home or self.last_activity is None:
            return None
        silence = minutes(now - self.last_activity)
        if silence < self.cfg.min_silence_min:
            return None
        surprise, budget = self.scores(now)
        if budget >= 1.0:
            reason = "max_silence"
        elif surprise >= -math.log(self.cfg.surprise_alpha):
            reason = "unusual_for_time"
        else:
            return None
        self.fired = True
        return AlertTrigger(
            "inactivity",
            "critical",
            now,
            {
                "silence_min": round(silence),
                "last_sensor": self.last_sensor,
                "last_room": self.last_room,
                "reason": reason,
                "profile": "learned" if self.learned else "default",
                "surprise": round(surprise, 2),
            },
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state (the hourly rates are rebuilt from the profile)."""
        return {
            "last_activity": iso_or_none(self.last_activity),
            "last_sensor": self.last_sensor,
            "last_room": self.last_room,
            "fired": self.fired,
            "bed_occupied": self.bed_occupied,
            "held": dict(sorted(self.held.items())),
            "motion_seen": self.motion_seen,
            "went_to_bed": self.went_to_bed,
            "left_bed": iso_or_none(self.left_bed),
        }

    def load(self, data: dict[str, Any]) -> None:
        """Restore state written by :meth:`to_dict`."""
        self.last_activity = parse_iso_or_none(data["last_activity"])
        self.last_sensor = str(data["last_sensor"])
        self.last_room = str(data["last_room"])
        self.fired = bool(data["fired"])
        bed = data["bed_occupied"]
        self.bed_occupied = None if bed is None else bool(bed)
        # Snapshots written before these fields existed carry on with the defaults.
        self.held = {str(k): str(v) for k, v in dict(data.get("held", {})).items()}
        self.motion_seen = bool(data.get("motion_seen", False))
        self.went_to_bed = bool(data.get("went_to_bed", False))
        self.left_bed = parse_iso_or_none(data.get("left_bed"))
