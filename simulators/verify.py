"""Run scenario files against a live hub: provision, play, inject, then check expectations through the API."""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from simulators.falls import fall_trace
from simulators.fleet import Fleet, HouseholdSim, Stats, VirtualClock, clock_for, direct_links
from simulators.household import Household, Provisioner, SimDevice, make_household
from simulators.hubapi import HubApi
from simulators.routine import DAY, HOUR, local_midnight
from simulators.scenario import Event, Expectation, Scenario
from simulators.watch_emulator import LocalWatchGateway, WatchEmulator

POLL_S = 0.2


@dataclass
class Target:
    """Where the hub and its broker are, and how to provision."""

    api: HubApi
    provisioner: Provisioner
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    root: str = "eldercare/v1"
    region_path: str = "sz/futian/lianhua"
    watch_gateway: tuple[str, int] | None = None  # None: run a local one bridging with each watch's account
    fallalld: Any = None  # Path to FallAllD wrist trials for fall traces


@dataclass
class Outcome:
    """The result of one expectation: pass/fail and what was observed."""

    text: str
    passed: bool
    observed: str


@dataclass
class Result:
    """A scenario's outcomes."""

    name: str
    outcomes: list[Outcome] = field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> bool:
        """Every expectation met and nothing went wrong."""
        return self.error is None and all(o.passed for o in self.outcomes)


@dataclass
class Run:
    """One scenario in progress: its households, fleet, watches and when each event happened."""

    scenario: Scenario
    target: Target
    houses: dict[str, Household]
    fleet: Fleet
    watches: dict[str, WatchEmulator] = field(default_factory=dict)
    injected: dict[str, float] = field(default_factory=dict)  # event label → wall time
    first_event: dict[str, float] = field(default_factory=dict)  # household name → wall time
    started: float = 0.0

    def sim(self, name: str) -> HouseholdSim:
        """The household simulation by scenario name."""
        return self.fleet.sims[self.houses[name].household_id]

    def device(self, name: str, role: str) -> SimDevice:
        """A household's device by role."""
        device = self.houses[name].device(role)
        if device is None:
            raise ValueError(f"household {name} has no {role} device (add it under extras)")
        return device


def scenario_clock(scenario: Scenario, now: float | None = None) -> VirtualClock:
    """The scenario's virtual clock; with `start_local`, the run starts at that local time of day."""
    span = scenario.duration + 60
    clock = clock_for(scenario.speed, span, now)
    if scenario.start_local is None:
        return clock
    hh, mm = (int(p) for p in scenario.start_local.split(":"))
    wanted = local_midnight(clock.virtual0) + hh * HOUR + mm * 60
    while wanted > clock.virtual0:
        wanted -= DAY
    return VirtualClock(clock.speed, clock.real0, wanted)


def _location(house: Household, rng: random.Random) -> dict[str, object]:
    return {"lat": round(house.lat + rng.uniform(-3e-4, 3e-4), 6),
            "lon": round(house.lon + rng.uniform(-3e-4, 3e-4), 6), "acc_m": 8, "src": "gnss"}


async def _sos(run: Run, e: Event) -> None:
    house = run.houses[e.household or ""]
    body: dict[str, object] = {"location": _location(house, random.Random()) if e.gps else None}
    await run.fleet.send(run.device(e.household or "", "wristband"), "sos", body, 1)


async def _fall(run: Run, e: Event) -> None:
    name = e.household or ""
    band = run.device(name, "wristband")
    sim = run.sim(name)
    rate = sim.wristband.imu_rate_hz if sim.wristband and sim.wristband.imu_rate_hz else 50.0
    trace = fall_trace(rate, random.Random(f"fall-{name}"), run.target.fallalld)  # reproducible per household
    await run.fleet.send(band, "imu", trace.payload(), 1)
    if e.device_alarm:
        await run.fleet.send(band, "fall", {"confidence": e.confidence, "location": _location(run.houses[name],
                                                                                             random.Random())}, 1)
    sim.silent_from = run.fleet.clock.now()  # lying on the floor: no routine afterwards


async def _radar_fall(run: Run, e: Event) -> None:
    await run.fleet.send(run.device(e.household or "", "radar"), "state", {"presence": True, "fall": e.state}, 1)


async def _collapse(run: Run, e: Event) -> None:
    name = e.household or ""
    sim = run.sim(name)
    now = run.fleet.clock.now()
    sim.silent_from = now
    bathroom = run.houses[name].device("motion", "bathroom")
    if bathroom is not None:
        await run.fleet.send(bathroom, "state", {"motion": True}, 1)
    radar = run.houses[name].device("radar")
    if radar is not None:
        await run.fleet.send(radar, "state", {"presence": True, "fall": "fall"}, 1)


async def _wander(run: Run, e: Event) -> None:
    name = e.household or ""
    sim = run.sim(name)
    assert sim.wristband is not None
    sim.routine.rooms.clear()  # the flat is empty from now on
    sim.silent_from = run.fleet.clock.now() + 60
    door = run.device(name, "exit")
    await run.fleet.send(door, "state", {"contact": "open"}, 1)
    await run.fleet.send(door, "state", {"contact": "closed"}, 1, ts=run.fleet.clock.now() + 10)
    band = sim.wristband
    band.wander_from = run.fleet.clock.now()
    band.wander_bearing = random.Random(name).uniform(0, 6.28)
    band.location_s = 30.0
    band.next_location = run.fleet.clock.now()
    band.device_geofence = run.scenario.household(name).device_geofence


async def _skip_checkin(run: Run, e: Event) -> None:
    run.sim(e.household or "").skip_checkin = True


async def _battery_drain(run: Run, e: Event) -> None:
    sim = run.sim(e.household or "")
    assert sim.wristband is not None
    sim.wristband.battery = e.level
    sim.wristband.drain_per_h = 20.0
    await run.fleet.send(sim.wristband.device, "heartbeat", {"battery": e.level, "signal": -80, "worn": True}, 1)


async def _offline(run: Run, e: Event) -> None:
    run.fleet.sever(run.device(e.household or "", e.device), e.seconds)


async def _take_off(run: Run, e: Event) -> None:
    sim = run.sim(e.household or "")
    assert sim.wristband is not None
    sim.wristband.worn = False
    band = sim.wristband.device
    await run.fleet.send(band, "heartbeat", {"battery": round(sim.wristband.battery), "worn": False}, 1)
    await run.fleet.send(band, "alarm", {"alarms": ["removed"]}, 1)


async def _storm(run: Run, e: Event) -> None:
    run.fleet.storm()
    await asyncio.sleep(0.2)
    await run.fleet.wait_connected(20)


async def _home_alarm(run: Run, e: Event) -> None:
    key = "smoke" if e.event == "smoke" else "leak"
    await run.fleet.send(run.device(e.household or "", key), "state", {key: True}, 1)


async def _tamper(run: Run, e: Event) -> None:
    await run.fleet.send(run.device(e.household or "", e.device), "heartbeat", {"tamper": True}, 1)


async def _watch(run: Run, e: Event) -> None:
    name = e.household or ""
    watch = run.watches[name]
    house = run.houses[name]
    where = _location(house, random.Random())
    lat, lon = (where["lat"], where["lon"]) if e.gps else (None, None)
    if e.event == "watch_position":
        await watch.position(lat, lon)  # type: ignore[arg-type]
        return
    alarm = e.event.removeprefix("watch_")
    await watch.alarm([alarm], lat, lon)  # type: ignore[arg-type]


async def _acknowledge(run: Run, e: Event) -> None:
    rid = run.houses[e.household or ""].resident_id
    for alert in await run.target.api.alerts(rid):
        if alert["type"] == e.alert and alert["acknowledged_at"] is None:
            await run.target.api.acknowledge(alert["id"])


INJECT: dict[str, Callable[[Run, Event], Awaitable[None]]] = {
    "sos": _sos, "fall": _fall, "radar_fall": _radar_fall, "collapse": _collapse, "wander": _wander,
    "skip_checkin": _skip_checkin, "battery_drain": _battery_drain, "offline": _offline, "take_off": _take_off,
    "reconnect_storm": _storm, "smoke": _home_alarm, "leak": _home_alarm, "tamper": _tamper,
    "watch_sos": _watch, "watch_fall": _watch, "watch_removed": _watch, "watch_geofence_exit": _watch,
    "watch_low_battery": _watch, "watch_power_off": _watch, "watch_position": _watch, "acknowledge": _acknowledge,
}


def describe(x: Expectation) -> str:
    """The expectation in words."""
    if x.kind == "alert":
        extra = "".join([f", severity {x.severity}" if x.severity else "",
                         f", location {'present' if x.location else 'absent'}" if x.location is not None else "",
                         f", details {x.details}" if x.details else "",
                         f", exactly {x.count}" if x.count is not None else ""])
        return f"a {x.alert} alert for {x.household} within {x.within:g} s{extra}"
    if x.kind == "no_alert":
        what = "" if x.no_alert == "any" else f"{x.no_alert} "
        return f"no {what}alert for {x.household} during the run"
    if x.entry is not None:
        e = x.entry
        parts = [f"step {e.step}" if e.step is not None else "", f"to {e.recipient_kind}" if e.recipient_kind else "",
                 f"details {e.details}" if e.details else ""]
        what = " ".join(p for p in parts if p)
        kinds = e.kind if isinstance(e.kind, str) else "' or '".join(e.kind)
        return f"{x.timeline} alert of {x.household}: '{kinds}' {what} within {x.within:g} s"
    assert x.absent is not None
    return f"{x.timeline} alert of {x.household}: no '{x.absent.kind}' step {x.absent.step} by the end"


def _alert_matches(alert: dict[str, Any], x: Expectation) -> list[str]:
    problems = []
    if x.severity and alert["severity"] != x.severity:
        problems.append(f"severity {alert['severity']}")
    if x.location is not None and (alert.get("location") is not None) != x.location:
        problems.append(f"location {alert.get('location')}")
    for key, value in x.details.items():
        if alert["details"].get(key) != value:
            problems.append(f"details.{key}={alert['details'].get(key)!r}")
    return problems


def _entry_matches(entry: dict[str, Any], spec: Any) -> bool:
    if entry["kind"] not in ([spec.kind] if isinstance(spec.kind, str) else spec.kind):
        return False
    d = entry["details"]
    return (spec.step is None or d.get("step") == spec.step) and (
        spec.recipient_kind is None or d.get("recipient_kind") == spec.recipient_kind) and all(
        d.get(key) == value for key, value in spec.details.items())


async def check(run: Run, x: Expectation, final: bool) -> Outcome | None:
    """Evaluate one expectation now; None means "not decided yet, ask again"."""
    rid = run.houses[x.household].resident_id
    since = run.injected.get(x.after or "", run.first_event.get(x.household, run.started))
    late = final or time.time() > since + x.within
    alerts = await run.target.api.alerts(rid)
    if x.kind == "no_alert":
        return _no_alert(x, alerts, final)
    typed = [a for a in alerts if a["type"] == x.alert_type]
    if x.kind == "alert":
        return _alert(x, alerts, typed, since, late)
    if not typed:
        return Outcome(describe(x), False, f"no {x.timeline} alert") if late else None
    entries = await run.target.api.timeline(min(typed, key=lambda a: a["id"])["id"])
    return _timeline(x, entries, since, late, final)


def _no_alert(x: Expectation, alerts: list[dict[str, Any]], final: bool) -> Outcome | None:
    seen = [a for a in alerts if x.no_alert in ("any", a["type"])]
    if seen:
        return Outcome(describe(x), False, "raised: " + ", ".join(f"{a['type']}#{a['id']}" for a in seen))
    return Outcome(describe(x), True, f"none of {len(alerts)} alerts") if final else None


def _alert(x: Expectation, alerts: list[dict[str, Any]], typed: list[dict[str, Any]], since: float,
           late: bool) -> Outcome | None:
    if not typed:
        if not late:
            return None
        others = ", ".join(sorted({a["type"] for a in alerts})) or "none"
        return Outcome(describe(x), False, f"no {x.alert} alert after {time.time() - since:.1f} s (alerts: {others})")
    first = min(typed, key=lambda a: a["id"])
    latency = datetime.fromisoformat(first["created_at"]).timestamp() - since
    problems = _alert_matches(first, x)
    if x.count is not None and len(typed) != x.count:
        problems.append(f"{len(typed)} alerts")
    observed = f"{x.alert} #{first['id']} after {latency:.2f} s, severity {first['severity']}" + (
        f" ({'; '.join(problems)})" if problems else "")
    return Outcome(describe(x), latency <= x.within and not problems, observed)


def _timeline(x: Expectation, entries: list[dict[str, Any]], since: float, late: bool,
              final: bool) -> Outcome | None:
    kinds = ", ".join(f"{e['kind']}{'/' + str(e['details'].get('step')) if 'step' in e['details'] else ''}"
                      for e in entries)
    if x.absent is not None:
        bad = [e for e in entries if _entry_matches(e, x.absent)]
        if bad:
            return Outcome(describe(x), False, f"found at {bad[0]['ts']}: {kinds}")
        return Outcome(describe(x), True, f"timeline: {kinds}") if final else None
    hit = next((e for e in entries if _entry_matches(e, x.entry)), None)
    if hit is not None:
        latency = datetime.fromisoformat(hit["ts"]).timestamp() - since
        return Outcome(describe(x), latency <= x.within, f"'{hit['kind']}' after {latency:.2f} s")
    return Outcome(describe(x), False, f"timeline: {kinds}") if late else None


async def run_scenario(scenario: Scenario, target: Target, progress: Callable[[str], None] | None = None) -> Result:
    """Provision the scenario's households under a fresh prefix, play it, and check every expectation."""
    result = Result(scenario.name)
    prefix = "v" + secrets.token_hex(3)
    rng = random.Random(scenario.name)
    houses = {spec.name: make_household(prefix, i, rng, target.region_path, (22.5535, 114.0537), spec.extras)
              for i, spec in enumerate(scenario.households, 1)}
    for spec in scenario.households:
        if not spec.device_geofence:  # the hub's own geofence must see the walk: give it the safe zone
            houses[spec.name].safe_zone_m = 300.0
    await target.provisioner.provision(list(houses.values()))
    try:
        await _play(scenario, target, houses, result, progress)
    finally:
        with contextlib.suppress(Exception):
            await target.provisioner.remove(list(houses.values()))
    return result


async def _play(scenario: Scenario, target: Target, houses: dict[str, Household], result: Result,
                progress: Callable[[str], None] | None) -> None:
    stats = Stats()
    fleet_houses = list(houses.values())
    # Watches talk TCP to the watch gateway, not MQTT: they get no broker link of their own.
    links = [link for link in direct_links(fleet_houses, target.mqtt_host, target.mqtt_port, target.root, stats)
             if link.device.role != "watch"]
    clock = scenario_clock(scenario)
    fleet = Fleet(fleet_houses, links, clock, stats, seed=1)
    run = Run(scenario, target, houses, fleet)
    for spec in scenario.households:
        if not spec.routine:
            run.sim(spec.name).silent_from = clock.now()
    stop = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        fleet_task = asyncio.create_task(fleet.run(stop))
        stack.push_async_callback(_finish, fleet_task, stop)
        if not await fleet.wait_connected(30):
            result.error = f"only {stats.connected} of {stats.connections} devices could connect to the broker"
            return
        watches = {name: d for name, h in houses.items() for d in h.devices if d.role == "watch"}
        if watches:
            host, port = target.watch_gateway or ("127.0.0.1", 0)
            if target.watch_gateway is None:
                passwords = {d.device_id: d.password for d in watches.values()}
                local = await stack.enter_async_context(LocalWatchGateway(
                    target.mqtt_host, target.mqtt_port, target.root, passwords))
                port = local.port
            for name, d in watches.items():
                run.watches[name] = await stack.enter_async_context(WatchEmulator(d.device_id, host, port))
        run.started = time.time()
        for e in sorted(scenario.timeline, key=lambda e: e.at):
            await asyncio.sleep(max(0.0, run.started + e.at - time.time()))
            at = time.time()
            if e.name:
                run.injected[e.name] = at
            if e.household:
                run.first_event.setdefault(e.household, at)
            else:
                for name in houses:
                    run.first_event.setdefault(name, at)
            if progress:
                progress(f"  {scenario.name}: t+{at - run.started:.1f}s {e.event} {e.household or ''}")
            await INJECT[e.event](run, e)
        await _await_outcomes(run, result)


async def _await_outcomes(run: Run, result: Result) -> None:
    pending = dict(enumerate(run.scenario.expect))
    decided: dict[int, Outcome] = {}
    deadlines = [run.injected.get(x.after or "", run.first_event.get(x.household, run.started)) + x.within
                 for x in run.scenario.expect if x.kind != "no_alert"]
    end = max([run.started + run.scenario.duration, *deadlines])
    while pending and time.time() < end:
        for i, x in list(pending.items()):
            if x.kind == "alert" or (x.kind == "timeline" and x.entry is not None):
                outcome = await check(run, x, final=False)
                if outcome is not None:
                    decided[i] = outcome
                    del pending[i]
            elif x.kind == "no_alert":
                outcome = await check(run, x, final=False)
                if outcome is not None:  # an unwanted alert is a failure at once
                    decided[i] = outcome
                    del pending[i]
        await asyncio.sleep(POLL_S)
    for i, x in pending.items():
        decided[i] = await check(run, x, final=True) or Outcome(describe(x), False, "undecided")
    result.outcomes = [decided[i] for i in range(len(run.scenario.expect))]


async def _finish(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    stop.set()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 15)


def report(result: Result) -> str:
    """Human-readable pass/fail lines with the observed values."""
    lines = [f"{'PASS' if result.passed else 'FAIL'} {result.name}"]
    if result.error:
        lines.append(f"  ERROR {result.error}")
    for o in result.outcomes:
        lines.append(f"  {'ok  ' if o.passed else 'FAIL'} {o.text} — observed: {o.observed}")
    return "\n".join(lines)
