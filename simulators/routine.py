"""A resident's daily routine: sleep, meals, bathroom visits, going out, visitors, drawn per resident."""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterator
from dataclasses import dataclass

HOUR = 3600.0
DAY = 24 * HOUR
LOCAL_UTC_OFFSET_S = 8 * HOUR  # the fleet lives in China Standard Time

# Activities and the room they happen in (None: not at home).
ROOM_OF = {"sleep": "bedroom", "bathroom": "bathroom", "meal": "kitchen", "idle": "living_room",
           "visitor": "living_room", "out": None, "nap": "bedroom"}


@dataclass(frozen=True)
class Profile:
    """What makes one resident's days theirs (hours are local time)."""

    wake_h: float
    sleep_h: float
    meals_h: tuple[float, float, float]
    bathroom_visits: int
    night_bathroom: float  # probability of a visit during the night
    out_prob: float
    out_start_h: float
    out_hours: float
    visitor_prob: float
    checkin_h: float
    nap: bool


def draw_profile(rng: random.Random) -> Profile:
    """A plausible resident, different for each draw."""
    wake = rng.uniform(5.5, 7.5)
    return Profile(
        wake_h=wake,
        sleep_h=rng.uniform(20.5, 22.5),
        meals_h=(wake + rng.uniform(0.5, 1.2), rng.uniform(11.5, 12.5), rng.uniform(17.5, 18.5)),
        bathroom_visits=rng.randint(4, 8),
        night_bathroom=rng.uniform(0.2, 0.8),
        out_prob=rng.uniform(0.4, 0.9),
        out_start_h=rng.uniform(8.5, 10.0),
        out_hours=rng.uniform(0.75, 2.0),
        visitor_prob=rng.uniform(0.1, 0.5),
        checkin_h=wake + rng.uniform(1.0, 2.5),
        nap=rng.random() < 0.5,
    )


@dataclass(frozen=True)
class Activity:
    """One stretch of the day in virtual unix seconds."""

    start: float
    end: float
    kind: str

    @property
    def room(self) -> str | None:
        """Where the resident is during it."""
        return ROOM_OF[self.kind]


def local_midnight(ts: float) -> float:
    """The local midnight at or before `ts`."""
    local = ts + LOCAL_UTC_OFFSET_S
    return local - local % DAY - LOCAL_UTC_OFFSET_S


def plan_day(profile: Profile, midnight: float, rng: random.Random) -> list[Activity]:
    """The day from local midnight to the next, as back-to-back activities."""
    def at(hours: float) -> float:
        return midnight + hours * HOUR

    anchors: list[tuple[float, float, str]] = [(0.0, profile.wake_h, "sleep")]
    if rng.random() < profile.night_bathroom:
        h = rng.uniform(1.5, profile.wake_h - 1)
        anchors = [(0.0, h, "sleep"), (h, h + rng.uniform(0.05, 0.15), "bathroom"),
                   (h + 0.2, profile.wake_h, "sleep")]
    morning = profile.wake_h + 0.02
    anchors.append((morning, morning + rng.uniform(0.15, 0.3), "bathroom"))
    for meal in profile.meals_h:
        anchors.append((meal, meal + rng.uniform(0.3, 0.6), "meal"))
    if rng.random() < profile.out_prob:
        start = profile.out_start_h + rng.uniform(-0.3, 0.3)
        anchors.append((start, start + profile.out_hours * rng.uniform(0.7, 1.3), "out"))
    if profile.nap:
        nap = rng.uniform(13.0, 13.8)
        anchors.append((nap, nap + rng.uniform(0.5, 1.2), "nap"))
    if rng.random() < profile.visitor_prob:
        start = rng.uniform(15.0, 16.5)
        anchors.append((start, start + rng.uniform(0.5, 1.5), "visitor"))
    anchors.append((profile.sleep_h - 0.25, profile.sleep_h - 0.05, "bathroom"))
    anchors.append((profile.sleep_h, 24.0, "sleep"))
    anchors.sort()
    # Drop anything overlapping an earlier anchor, then fill the gaps with time in the living room.
    kept: list[tuple[float, float, str]] = []
    for a in anchors:
        if kept and a[0] < kept[-1][1]:
            continue
        kept.append(a)
    day: list[Activity] = []
    cursor = 0.0
    for start, end, kind in kept:
        if start > cursor:
            day.extend(_idle(at(cursor), at(start), rng, profile.bathroom_visits))
        day.append(Activity(at(start), at(end), kind))
        cursor = end
    if cursor < 24.0:
        day.extend(_idle(at(cursor), at(24.0), rng, profile.bathroom_visits))
    return day


def _idle(start: float, end: float, rng: random.Random, visits_per_day: int) -> list[Activity]:
    """Living-room time, broken now and then by a short bathroom visit."""
    out: list[Activity] = []
    t = start
    while t < end:
        gap = rng.expovariate(visits_per_day / (14 * HOUR))
        visit = t + gap
        if visit + 600 >= end:
            out.append(Activity(t, end, "idle"))
            break
        length = rng.uniform(180, 600)
        out.append(Activity(t, visit, "idle"))
        out.append(Activity(visit, visit + length, "bathroom"))
        t = visit + length
    return out


@dataclass(frozen=True)
class HomeEvent:
    """A sensor reading the routine causes: which device role (and room) reports what."""

    ts: float
    role: str  # motion, exit, bed, radar, checkin
    room: str | None
    body: dict[str, object]


class Routine:
    """A resident's days, generated on demand and reproducible from the seed.

    profile: the resident's habits (drawn with `draw_profile`).
    seed: makes each day's plan reproducible.
    rooms: rooms that have a motion sensor; others stay silent.
    """

    def __init__(self, profile: Profile, seed: int, rooms: list[str]) -> None:
        self.profile = profile
        self.seed = seed
        self.rooms = set(rooms)
        self._days: dict[float, list[Activity]] = {}

    def day(self, midnight: float) -> list[Activity]:
        """The plan of the day starting at `midnight` (cached)."""
        if midnight not in self._days:
            if len(self._days) > 4:
                self._days.pop(min(self._days))
            self._days[midnight] = plan_day(self.profile, midnight, random.Random(f"{self.seed}:{midnight}"))
        return self._days[midnight]

    def activity_at(self, ts: float) -> Activity:
        """What the resident is doing at `ts`."""
        day = self.day(local_midnight(ts))
        i = bisect.bisect_right([a.start for a in day], ts) - 1
        return day[max(i, 0)]

    def chunks(self, start: float, end: float) -> Iterator[tuple[float, list[HomeEvent]]]:
        """(activity start, its readings sorted by time) for every activity between `start` and `end`."""
        midnight = local_midnight(start)
        previous: Activity | None = None
        while midnight < end:
            for act in self.day(midnight):
                if act.end <= start:
                    previous = act
                    continue
                if act.start >= end:
                    return
                readings = sorted((e for e in self._readings(act, previous) if start <= e.ts < end),
                                  key=lambda e: e.ts)
                yield act.start, readings
                previous = act
            midnight += DAY

    def events(self, start: float, end: float) -> list[HomeEvent]:
        """Every home sensor reading between `start` and `end`, in time order."""
        return sorted((e for _, chunk in self.chunks(start, end) for e in chunk), key=lambda e: e.ts)

    def _readings(self, act: Activity, previous: Activity | None) -> Iterator[HomeEvent]:
        rng = random.Random(f"{self.seed}:{act.start}")
        if previous is not None and previous.kind == "sleep" and act.kind != "sleep":
            yield HomeEvent(act.start, "bed", "bedroom", {"occupied": False})
        if act.kind in {"out", "visitor"}:
            yield from _door(act.start, rng)
        if act.kind == "out":
            yield from _door(act.end - 30, rng)
            return
        room = act.room
        if act.kind in {"sleep", "nap"}:
            yield HomeEvent(act.start, "motion", "bedroom", {"motion": True})
            yield HomeEvent(act.start + 60, "bed", "bedroom", {"occupied": True})
            yield HomeEvent(act.start + 120, "motion", "bedroom", {"motion": False})
            return
        if act.kind == "bathroom":
            yield HomeEvent(act.start, "radar", "bathroom", {"presence": True, "fall": "none"})
        if room in self.rooms:
            # PIR sensors report motion on a re-trigger interval while someone moves about.
            t = act.start
            period = 90.0 if act.kind == "visitor" else 240.0
            while t < act.end:
                yield HomeEvent(t, "motion", room, {"motion": True})
                t += rng.uniform(0.5, 1.5) * period
            yield HomeEvent(min(t, act.end) + 60, "motion", room, {"motion": False})
        if act.kind == "bathroom":
            yield HomeEvent(act.end, "radar", "bathroom", {"presence": False, "fall": "none"})
        if act.kind == "visitor":
            yield from _door(act.end - 20, rng)
        checkin = local_midnight(act.start) + self.profile.checkin_h * HOUR
        if act.start <= checkin < act.end:
            yield HomeEvent(checkin, "checkin", None, {})


def _door(ts: float, rng: random.Random) -> Iterator[HomeEvent]:
    yield HomeEvent(ts, "exit", "entrance", {"contact": "open"})
    yield HomeEvent(ts + rng.uniform(5, 20), "exit", "entrance", {"contact": "closed"})
