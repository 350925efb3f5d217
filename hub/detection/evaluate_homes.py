"""Measure the home detectors on recorded homes: `python -m hub.detection.evaluate homes [--data PATH]`.

Every home is replayed through the live HomeMonitor (as `simulators.replay` does), starting from the
defaults like a new installation and learning only from its own past. Printed per home: days
replayed, false alarms per 30 days by type, a collapse study and a flat 3-hour-silence reference.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Protocol, TextIO

from hub.detection.home_events import AlertTrigger, HomeEvent, in_daily_window
from hub.detection.home_monitor import ResidentConfig
from hub.detection.inactivity import PresenceConfig, PresenceTracker
from hub.errors import EldercareError
from simulators.casas import HomeLog, read_home
from simulators.replay import ReplaySession

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
# casas_cil has no absences.csv: these come from its README (away 07-13 to 07-16) and its entrance
# events (left 07-13 07:21, back 07-16 18:54; out 07-17 09:19-17:31).
_CASAS_ABSENCES = (
    (datetime(2016, 7, 13, 7, 21), datetime(2016, 7, 16, 18, 54)),
    (datetime(2016, 7, 17, 9, 19), datetime(2016, 7, 17, 17, 31)),
)
HOMES = (
    ("casas_cil", "casas_cil/tm000.multiday_absence.txt"),
    ("ordonez_a", "homes/ordonez_a"),
    ("ordonez_b", "homes/ordonez_b"),
    ("kasteren_a", "homes/kasteren_a"),
)

DAY_START, DAY_END = time(8, 0), time(20, 0)
CUT_MINUTES = (7, 37)  # two cut candidates an hour, off the hour so they do not line up with hour cells
ACTIVE_BEFORE = timedelta(minutes=30)
HORIZON = timedelta(hours=12)
FOUND_WITHIN_MIN = 180.0
FLAT_SILENCE_MIN = 180.0
# Targets of issue 16 for homes with motion sensors.
TARGET_FA_PER_30D = 1.0
TARGET_FOUND_SHARE = 0.95
TARGET_MEDIAN_MIN = 90.0


class DatasetMissingError(EldercareError):
    """A home's recording is not where the evaluation expects it."""


class Session(Protocol):
    """What the evaluation drives: the live replay session or the flat reference rule."""

    def feed(self, event: HomeEvent) -> list[AlertTrigger]: ...
    def advance_to(self, until: datetime) -> list[AlertTrigger]: ...
    def fork(self) -> Session: ...


class FlatSilenceRule:
    """Reference: alarm after 3 h of silence counted outside 22:00-07:00, at home (same presence rule)."""

    def __init__(self, limit_min: float = FLAT_SILENCE_MIN) -> None:
        self.limit = limit_min
        self.presence = PresenceTracker(PresenceConfig())
        self.last: datetime | None = None
        self.quiet_min = 0.0
        self.fired = False
        self.clock: datetime | None = None

    def advance_to(self, until: datetime) -> list[AlertTrigger]:
        """Tick each minute up to ``until``."""
        out: list[AlertTrigger] = []
        if self.clock is None:
            return out
        tick = self.clock.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while tick <= until:
            self.presence.tick(tick, tick, False)
            if not in_daily_window(tick.time(), time(22, 0), time(7, 0)):
                self.quiet_min += 1.0
            if not self.fired and not self.presence.away and self.quiet_min >= self.limit:
                self.fired = True
                out.append(AlertTrigger("inactivity", "critical", tick, {"rule": "flat_3h"}))
            self.clock = tick
            tick += timedelta(minutes=1)
        return out

    def feed(self, event: HomeEvent) -> list[AlertTrigger]:
        """Advance to the event, then take it."""
        out = self.advance_to(event.ts)
        self.clock = event.ts if self.clock is None or event.ts > self.clock else self.clock
        self.presence.observe(event)
        if event.is_activity:
            self.last, self.quiet_min, self.fired = event.ts, 0.0, False
        return out

    def fork(self) -> FlatSilenceRule:
        """Independent copy."""
        return copy.deepcopy(self)


@dataclass
class Figures:
    """One detector's figures on one home."""

    alerts: Counter[str] = field(default_factory=Counter)
    away_not_home: int = 0
    delays: list[float | None] = field(default_factory=list)
    held_at_cut: int = 0

    def false_alarms(self) -> int:
        """Every alert except a not_home raised while the resident really was out."""
        return sum(self.alerts.values()) - self.away_not_home

    def found_share(self) -> float:
        """Share of collapses alerted within 3 h."""
        found = [d for d in self.delays if d is not None and d <= FOUND_WITHIN_MIN]
        return len(found) / len(self.delays) if self.delays else 0.0

    def median_min(self) -> float | None:
        """Median delay, misses counting as longer than any delay (None when most were missed)."""
        if not self.delays:
            return None
        ranked = sorted(d if d is not None else float("inf") for d in self.delays)
        mid = statistics.median_low(ranked)
        return None if mid == float("inf") else mid


def _away(ts: datetime, absences: Sequence[tuple[datetime, datetime]]) -> bool:
    return any(start <= ts <= end for start, end in absences)


def cut_points(log: HomeLog) -> list[datetime]:
    """Daytime moments at home (per the absences) with some activity in the 30 minutes before."""
    acts = [e.ts for e in log.events if e.is_activity]
    if not acts:
        return []
    cuts: list[datetime] = []
    day = acts[0].date()
    j = 0
    while day <= acts[-1].date():
        for hour in range(DAY_START.hour, DAY_END.hour):
            for minute in CUT_MINUTES:
                cut = datetime.combine(day, time(hour, minute))
                while j < len(acts) and acts[j] < cut:
                    j += 1
                if j and cut - acts[j - 1] <= ACTIVE_BEFORE and cut < acts[-1] and not _away(cut, log.absences):
                    cuts.append(cut)
        day += timedelta(days=1)
    return cuts


def _held(events: Sequence[HomeEvent]) -> dict[str, HomeEvent]:
    """Occupancy sensors (bed and seat mats, items) still reporting 'on' after these events."""
    held: dict[str, HomeEvent] = {}
    for ev in events:
        if ev.kind in ("bed", "item"):
            if ev.state in ("on", "occupied"):
                held[ev.sensor] = ev
            else:
                held.pop(ev.sensor, None)
    return held


def measure(log: HomeLog, make: type[Session] | None, config: ResidentConfig) -> Figures:
    """False alarms over the whole log and the collapse study, for one detector on one home."""
    def new() -> Session:
        return FlatSilenceRule() if make is FlatSilenceRule else ReplaySession(config)

    figures = Figures()
    session = new()
    for ev in log.events:
        for alert in session.feed(ev):
            figures.alerts[alert.type] += 1
            if alert.type == "not_home" and _away(alert.ts, log.absences):
                figures.away_not_home += 1
    # The recording's end is not a silence: no ticks past the last event.
    cuts = cut_points(log)
    session = new()
    idx = 0
    for cut in cuts:
        while idx < len(log.events) and log.events[idx].ts < cut:
            session.feed(log.events[idx])
            idx += 1
        twin = session.fork()
        held = _held(log.events[:idx])
        if held:
            # A collapse is a fall to the floor: a seat or bed mat the resident was on reports empty.
            figures.held_at_cut += 1
            for ev in held.values():
                twin.feed(HomeEvent(cut, ev.sensor, ev.kind, ev.room, ev.exit, "off"))
        alerts = [a for a in twin.advance_to(cut + HORIZON) if a.ts >= cut]
        figures.delays.append((alerts[0].ts - cut).total_seconds() / 60 if alerts else None)
    return figures


def load_homes(root: Path) -> list[HomeLog]:
    """Read every home of the evaluation from ``root``."""
    logs = []
    for name, rel in HOMES:
        path = root / rel
        if not path.exists():
            raise DatasetMissingError(f"{path} not found: the evaluation needs ../shared/datasets (see --data)")
        log = read_home(path)
        absences = list(_CASAS_ABSENCES) if name == "casas_cil" else log.absences
        logs.append(HomeLog(name, sorted(log.events, key=lambda e: e.ts), log.sensors, absences))
    return logs


def _days(log: HomeLog) -> float:
    return (log.events[-1].ts - log.events[0].ts).total_seconds() / 86400 if log.events else 0.0


def _fmt_min(value: float | None) -> str:
    return ">12h" if value is None else f"{value / 60:.2f} h"


def table(logs: Sequence[HomeLog], config: ResidentConfig) -> list[str]:
    """The printed table: one row for the live detector and one for the flat rule per home."""
    head = (
        f"{'home':<11} {'sensors':<13} {'days':>5} {'rule':<7} {'FA/30d':>7}  {'by type (per 30 d)':<44}"
        f" {'cuts':>4} {'held':>4} {'<=3h':>6} {'median':>8}  targets"
    )
    lines = [head, "-" * len(head)]
    for log in logs:
        kinds = sorted({s.kind for s in log.sensors.values()})
        has_motion = "motion" in kinds
        days = _days(log)
        for rule, make in (("live", None), ("flat3h", FlatSilenceRule)):
            fig = measure(log, make, config)
            per30 = fig.false_alarms() * 30 / days if days else 0.0
            by_type = ", ".join(f"{k} {v * 30 / days:.1f}" for k, v in sorted(fig.alerts.items()))
            if fig.away_not_home:
                by_type += f" (not_home while out: {fig.away_not_home})"
            share, median = fig.found_share(), fig.median_min()
            missed = []
            if has_motion and rule == "live":
                if per30 > TARGET_FA_PER_30D:
                    missed.append("FA")
                if share < TARGET_FOUND_SHARE:
                    missed.append("<=3h")
                if median is None or median > TARGET_MEDIAN_MIN:
                    missed.append("median")
            verdict = ("NOT MET: " + ", ".join(missed)) if missed else ("met" if has_motion and rule == "live" else "")
            if not has_motion and rule == "live":
                verdict = "no motion sensors: reported only"
            lines.append(
                f"{log.name:<11} {'+'.join(k[:3] for k in kinds):<13} {days:>5.1f} {rule:<7} {per30:>7.1f}"
                f"  {by_type or '-':<44} {len(fig.delays):>4} {fig.held_at_cut:>4} {share:>6.1%}"
                f" {_fmt_min(median):>8}  {verdict}"
            )
    return lines


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Print the homes table; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m hub.detection.evaluate homes", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the datasets folder (default ../shared/datasets)")
    args = parser.parse_args(argv)
    try:
        logs = load_homes(args.data)
    except EldercareError as exc:
        print(f"error: {exc}", file=err)
        return 2
    for line in table(logs, ResidentConfig()):
        print(line, file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
