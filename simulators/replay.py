"""Replays recorded home-sensor logs through the live HomeMonitor on a virtual clock.

Usage:
    python -m simulators.replay casas PATH [--sensors MAP.json] [--until ISO8601] [--resident-config JSON] [--summary]

PATH is a CASAS log file or a homes/ folder (events.txt.gz + rooms.csv).
    python -m simulators.replay collapse-study PATH [--samples 200] [--seed 1] [--resident-config JSON]
"""

from __future__ import annotations

import argparse
import bisect
import copy
import json
import random
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import TextIO

from hub.detection.activity_profile import OnlineProfileLearner
from hub.detection.home_events import AlertTrigger, HomeEvent, local_clock
from hub.detection.home_monitor import HomeMonitor, ResidentConfig
from hub.errors import EldercareError
from simulators.casas import LogFormatError, SensorSpec, load_sensor_map, read_home_folder, read_log

TICK = timedelta(minutes=1)
COLLAPSE_TYPES = frozenset({"inactivity", "long_bathroom", "no_morning_activity"})


class ReplaySession:
    """One resident's monitor plus an online profile learner, advanced event by event."""

    def __init__(self, config: ResidentConfig) -> None:
        self.config = config
        self.monitor = HomeMonitor(config)
        self.learner = OnlineProfileLearner()
        self.clock: datetime | None = None
        self._next_relearn: datetime | None = None

    def _local(self, ts: datetime) -> datetime:
        return local_clock(ts, self.config.timezone)

    def advance_to(self, until: datetime) -> list[AlertTrigger]:
        """Tick every whole minute of virtual time up to ``until``."""
        out: list[AlertTrigger] = []
        if self.clock is None:
            return out
        tick = self.clock.replace(second=0, microsecond=0) + TICK
        while tick <= until:
            self._maybe_relearn(tick)
            out.extend(self.monitor.tick(tick))
            if not self.monitor.at_home:
                self.learner.mark_away(self._local(tick))
            self.clock = tick
            tick += TICK
        return out

    def _maybe_relearn(self, now: datetime) -> None:
        # Relearning at local midnight uses only what was seen before it: no peeking ahead.
        if self._next_relearn is None or now < self._next_relearn:
            return
        local = self._local(now)
        midnight = datetime.combine(local.date(), time(0))
        self.monitor.update_profile(self.learner.profile(midnight))
        self._next_relearn = now + (midnight + timedelta(days=1) - local)

    def feed(self, event: HomeEvent) -> list[AlertTrigger]:
        """Advance to the event's time, then hand it to the monitor."""
        out = self.advance_to(event.ts) if self.clock is not None else []
        if self.clock is None:
            local = self._local(event.ts)
            self._next_relearn = event.ts + (
                datetime.combine(local.date(), time(0)) + timedelta(days=1) - local
            )
        if self.clock is None or event.ts > self.clock:
            self.clock = event.ts
        self.learner.add(self._local(event.ts), event.is_activity)
        out.extend(self.monitor.observe(event))
        return out

    def fork(self) -> ReplaySession:
        """Independent copy; the monitor goes through a snapshot like a worker hand-over would."""
        twin = copy.copy(self)
        twin.monitor = HomeMonitor.from_snapshot(
            json.loads(json.dumps(self.monitor.state_snapshot())), profile=self.monitor.profile
        )
        twin.learner = copy.deepcopy(self.learner)
        return twin


def replay(
    events: Sequence[HomeEvent],
    config: ResidentConfig,
    until: datetime | None = None,
    emit: Callable[[AlertTrigger], None] | None = None,
) -> list[AlertTrigger]:
    """Run the monitor over ``events`` and on to ``until`` (default 24 h after the last event)."""
    session = ReplaySession(config)
    alerts: list[AlertTrigger] = []
    for event in events:
        if until is not None and event.ts > until:
            break
        for alert in session.feed(event):
            alerts.append(alert)
            if emit:
                emit(alert)
    if session.clock is not None:
        end = until if until is not None else session.clock + timedelta(hours=24)
        for alert in session.advance_to(end):
            alerts.append(alert)
            if emit:
                emit(alert)
    return alerts


@dataclass(frozen=True)
class CollapseResult:
    """One simulated collapse: when the log was cut and when (if) each kind of alert came."""

    cut: datetime
    inactivity_delay_min: float | None
    any_delay_min: float | None
    first_type: str | None
    not_home_delay_min: float | None = None


def pick_cut_points(
    events: Sequence[HomeEvent], samples: int, seed: int, day_start: int = 8, day_end: int = 20
) -> list[datetime]:
    """Random daytime moments when, in hindsight, the resident was clearly home.

    Home means at least two activity events in the 30 minutes before and after the moment; stray
    events during an absence are hours apart, so absences are never picked.
    """
    times = sorted(e.ts for e in events if e.is_activity)
    if not times:
        return []
    rng = random.Random(seed)
    first, last = times[0], times[-1]
    span = (last - first).total_seconds()
    half = timedelta(minutes=30)
    picked: list[datetime] = []
    for _ in range(samples * 200):
        if len(picked) >= samples:
            break
        t = first + timedelta(seconds=rng.uniform(0, span))
        if not day_start <= t.hour < day_end:
            continue
        i = bisect.bisect_left(times, t)
        before = i - bisect.bisect_left(times, t - half)
        after = bisect.bisect_right(times, t + half) - i
        if before >= 2 and after >= 2:
            picked.append(t)
    return sorted(picked)


def collapse_study(
    events: Sequence[HomeEvent], config: ResidentConfig, cuts: Sequence[datetime], horizon_h: float = 24.0
) -> list[CollapseResult]:
    """For each cut, replay the log up to it and silence after it; measure the alert delays."""
    session = ReplaySession(config)
    results: list[CollapseResult] = []
    idx = 0
    for cut in sorted(cuts):
        while idx < len(events) and events[idx].ts < cut:
            session.feed(events[idx])
            idx += 1
        twin = session.fork()
        alerts = twin.advance_to(cut + timedelta(hours=horizon_h))
        alerts = [a for a in alerts if a.ts >= cut]
        inact = next((a for a in alerts if a.type == "inactivity"), None)
        first = next((a for a in alerts if a.type in COLLAPSE_TYPES), None)
        gone = next((a for a in alerts if a.type == "not_home"), None)
        results.append(
            CollapseResult(
                cut,
                None if inact is None else (inact.ts - cut).total_seconds() / 60,
                None if first is None else (first.ts - cut).total_seconds() / 60,
                None if first is None else first.type,
                None if gone is None else (gone.ts - cut).total_seconds() / 60,
            )
        )
    return results


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile."""
    rank = max(1, min(len(sorted_values), round(q * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def summarise_delays(delays: Sequence[float | None], limit_min: float = 180.0) -> dict[str, float | int]:
    """min/median/p90/max of detected delays (minutes), share within the limit, and misses."""
    found = sorted(d for d in delays if d is not None)
    summary: dict[str, float | int] = {"n": len(delays), "missed_24h": len(delays) - len(found)}
    if found:
        summary.update(
            min=round(found[0], 1),
            median=round(_quantile(found, 0.5), 1),
            p90=round(_quantile(found, 0.9), 1),
            max=round(found[-1], 1),
        )
    summary["share_le_limit"] = round(sum(d <= limit_min for d in found) / len(delays), 3) if delays else 0.0
    return summary


def _load_config(value: str | None) -> ResidentConfig:
    if value is None:
        return ResidentConfig()
    text = value if value.lstrip().startswith("{") else Path(value).read_text(encoding="utf-8")
    try:
        return ResidentConfig.model_validate_json(text)
    except ValueError as err:
        raise LogFormatError(f"bad resident config: {err}") from err


def _load_events(path: str, sensors: str | None, err: TextIO) -> list[HomeEvent]:
    sensor_map: dict[str, SensorSpec] | None = load_sensor_map(Path(sensors)) if sensors else None
    bad: list[int] = []

    def on_error(line_no: int, reason: str) -> None:
        bad.append(line_no)
        print(f"{path}:{line_no}: skipped malformed line: {reason}", file=err)

    if Path(path).is_dir():
        # A homes/ folder: rooms.csv is the provisioning; a --sensors map still overrides it.
        events = read_home_folder(Path(path), on_error, sensor_map).events
        print(f"read {len(events)} events, skipped {len(bad)} malformed lines", file=err)
        return sorted(events, key=lambda e: e.ts)
    events = read_log(Path(path), sensor_map, on_error)
    print(f"read {len(events)} events, skipped {len(bad)} malformed lines", file=err)
    return events


def _cmd_casas(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    config = _load_config(args.resident_config)
    events = _load_events(args.path, args.sensors, err)
    until = datetime.fromisoformat(args.until) if args.until else None

    def emit(alert: AlertTrigger) -> None:
        print(json.dumps(alert.to_json(), sort_keys=True), file=out)

    alerts = replay(events, config, until, emit)
    if args.summary and events:
        end = until or events[-1].ts + timedelta(hours=24)
        days = (end - events[0].ts).total_seconds() / 86400
        counts = Counter(a.type for a in alerts)
        per30 = {k: round(v * 30 / days, 1) for k, v in sorted(counts.items())}
        print(
            f"replayed {days:.2f} days; alerts {dict(sorted(counts.items()))}; per 30 days {per30}", file=err
        )
    return 0


def _cmd_collapse(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    config = _load_config(args.resident_config)
    events = _load_events(args.path, args.sensors, err)
    cuts = pick_cut_points(events, args.samples, args.seed, args.day_start, args.day_end)
    results = collapse_study(events, config, cuts)
    report = {
        "samples": len(results),
        "seed": args.seed,
        "inactivity_delay_min": summarise_delays([r.inactivity_delay_min for r in results]),
        "any_collapse_alert_delay_min": summarise_delays([r.any_delay_min for r in results]),
        "first_alert_types": dict(Counter(r.first_type or "none" for r in results)),
        # Misses are cuts right after entrance-area motion (taken as "left home"): what came instead.
        "missed_then_not_home_delay_min": sorted(
            round(r.not_home_delay_min, 1) if r.not_home_delay_min is not None else -1
            for r in results
            if r.any_delay_min is None
        ),
    }
    print(json.dumps(report, indent=2, sort_keys=True), file=out)
    if args.verbose:
        for r in results:
            print(f"{r.cut.isoformat()} inactivity={r.inactivity_delay_min} first={r.first_type}", file=err)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """CLI definition."""
    parser = argparse.ArgumentParser(prog="python -m simulators.replay", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("casas", "collapse-study"):
        p = sub.add_parser(name)
        p.add_argument("path", help="CASAS log (space-separated original or CIL tab-separated), or a homes/ folder"
                       " (events.txt.gz + rooms.csv)")
        p.add_argument("--sensors", help="MAP.json: sensor name -> {kind, room, exit}")
        p.add_argument("--resident-config", help="ResidentConfig as a JSON file path or inline JSON")
    casas = sub.choices["casas"]
    casas.add_argument("--until", help="replay until this ISO8601 time (default: last event + 24 h)")
    casas.add_argument("--summary", action="store_true", help="print alert counts per 30 days on stderr")
    study = sub.choices["collapse-study"]
    study.add_argument("--samples", type=int, default=200)
    study.add_argument("--seed", type=int, default=1)
    study.add_argument("--day-start", type=int, default=8, help="first local hour of 'daytime'")
    study.add_argument("--day-end", type=int, default=20, help="local hour daytime ends")
    study.add_argument("--verbose", action="store_true", help="one line per sample on stderr")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "casas":
            return _cmd_casas(args, out, err)
        return _cmd_collapse(args, out, err)
    except (EldercareError, OSError) as exc:
        print(f"error: {exc}", file=err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
