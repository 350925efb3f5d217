"""A fleet of simulated households publishing through the real broker on a compressible virtual clock."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import random
import socket
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import aiomqtt

from simulators.household import Household, SimDevice
from simulators.routine import Routine, draw_profile
from simulators.sensors import HEARTBEAT_S, SensorState, heartbeat_body, new_state, state_body
from simulators.wristband import Wristband, new_wristband

log = logging.getLogger(__name__)

WINDOW_S = 300.0  # virtual seconds of routine generated ahead at a time
MARGIN_S = 120.0  # virtual time stays at least this far behind real time


@dataclass
class VirtualClock:
    """Virtual unix time running `speed` times faster than the wall clock from (real0, virtual0)."""

    speed: float
    real0: float
    virtual0: float

    def now(self) -> float:
        """The virtual time now."""
        return self.virtual0 + (time.time() - self.real0) * self.speed


def clock_for(speed: float, duration_s: float, now: float | None = None) -> VirtualClock:
    """A clock whose virtual time never passes real time during `duration_s` real seconds.

    The hub refuses timestamps from the future, so compressed time is run in the past: it starts
    `duration_s * speed` (plus a margin) before now and ends just behind now.
    """
    real = time.time() if now is None else now
    back = duration_s * max(speed - 1.0, 0.0) + MARGIN_S
    return VirtualClock(speed, real, real - back)


@dataclass
class Stats:
    """Counters the progress line and the summary show."""

    started: float = field(default_factory=time.monotonic)
    devices: int = 0
    connections: int = 0
    connected: int = 0
    published: int = 0
    errors: int = 0
    dropped: int = 0
    reconnects: int = 0
    kinds: Counter[str] = field(default_factory=Counter)

    def summary(self, clock: VirtualClock | None = None) -> dict[str, Any]:
        """A JSON-ready summary."""
        elapsed = time.monotonic() - self.started
        out: dict[str, Any] = {
            "devices": self.devices, "connections": self.connections,
            "devices_per_connection": round(self.devices / self.connections, 1) if self.connections else 0,
            "published": self.published, "errors": self.errors, "dropped_while_offline": self.dropped,
            "reconnects": self.reconnects, "elapsed_s": round(elapsed, 2),
            "publish_rate_per_s": round(self.published / elapsed, 1) if elapsed else 0.0,
            "messages_by_kind": dict(self.kinds),
        }
        if clock is not None:
            out["speed"] = clock.speed
            out["virtual_span_s"] = round(elapsed * clock.speed, 1)
        return out


class Link:
    """A connection the fleet publishes through (a device's own, or a shared gateway's): it stays up,
    reconnects after drops with jittered backoff, and can be severed like a dying device."""

    devices: list[SimDevice]
    label: str  # seeds the jitter and names the link in debug logs

    def __init__(self, host: str, port: int, stats: Stats) -> None:
        self._host, self._port = host, port
        self._stats = stats
        self.client: aiomqtt.Client | None = None
        self.ready = asyncio.Event()
        self._drop = asyncio.Event()
        self.offline_until = 0.0

    def _connect(self) -> aiomqtt.Client:
        """A new (not yet entered) client with this link's account and last will."""
        raise NotImplementedError

    async def _announce(self, client: aiomqtt.Client) -> None:
        """Say online for every device the link carries, after each connect."""
        raise NotImplementedError

    async def publish(self, device: SimDevice, message: str, payload: bytes, qos: int) -> bool:
        """Publish one message of `device`; False when it had to be dropped."""
        raise NotImplementedError

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until `stop`; reconnect after drops, with jitter unless severed on purpose."""
        rng = random.Random(self.label)
        backoff = 0.5
        while not stop.is_set():
            wait = self.offline_until - time.monotonic()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
                continue
            self._drop.clear()
            client = self._connect()
            try:
                async with client:
                    self.client = client
                    await self._announce(client)
                    self._stats.connected += 1
                    self.ready.set()
                    backoff = 0.5
                    try:
                        await _hold(client, self._drop, stop)
                    finally:
                        self._stats.connected -= 1
                        self.ready.clear()
                        self.client = None
            except aiomqtt.MqttError as err:
                if not self._drop.is_set() and not stop.is_set():
                    self._stats.errors += 1
                    log.debug("link %s: %s", self.label, err)
                    await asyncio.sleep(backoff * rng.uniform(0.5, 1.5))
                    backoff = min(backoff * 2, 10.0)
            finally:
                settle(client)
            if self._drop.is_set() and not stop.is_set():
                self._stats.reconnects += 1

    def sever(self, offline_s: float = 0.0) -> None:
        """Cut the TCP connection without DISCONNECT (the broker publishes the last will); stay away `offline_s`."""
        self.offline_until = time.monotonic() + offline_s
        self._drop.set()
        if self.client is not None:
            _cut(self.client)


class DirectLink(Link):
    """One device's own connection, with its own credentials and a retained availability + last will."""

    def __init__(self, device: SimDevice, host: str, port: int, root: str, stats: Stats) -> None:
        super().__init__(host, port, stats)
        self.device = device
        self.devices = [device]
        self.label = device.device_id
        self._root = root

    def topic(self, device: SimDevice, message: str) -> str:
        """The native topic of one of this link's devices."""
        return f"{self._root}/{device.device_type}/{device.device_id}/{message}"

    def _connect(self) -> aiomqtt.Client:
        will = aiomqtt.Will(self.topic(self.device, "availability"), json.dumps({"v": 1, "state": "offline"}),
                            qos=1, retain=True)
        return aiomqtt.Client(self._host, self._port, identifier=f"sim-{self.device.device_id}",
                              username=self.device.device_id, password=self.device.password,
                              will=will, keepalive=60, timeout=10)

    async def _announce(self, client: aiomqtt.Client) -> None:
        await client.publish(self.topic(self.device, "availability"), json.dumps({"v": 1, "state": "online"}),
                             qos=1, retain=True)

    async def publish(self, device: SimDevice, message: str, payload: bytes, qos: int) -> bool:
        """Publish when connected; critical messages wait up to 10 s for the connection."""
        if not self.ready.is_set():
            if qos == 0:
                self._stats.dropped += 1
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ready.wait(), 10)
        client = self.client
        if client is None:
            self._stats.dropped += 1
            return False
        await client.publish(self.topic(device, message), payload, qos=qos)
        return True


async def _hold(client: aiomqtt.Client, drop: asyncio.Event, stop: asyncio.Event) -> None:
    """Wait until the connection is lost (MqttError), severed or stopped."""
    async def lost() -> None:
        async for _ in client.messages:
            pass

    tasks = [asyncio.create_task(lost()), asyncio.create_task(drop.wait()), asyncio.create_task(stop.wait())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    if drop.is_set():
        raise aiomqtt.MqttError("severed by the simulator")


def settle(client: aiomqtt.Client) -> None:
    """Collect the outcome of a dropped connection, so asyncio does not report it as never retrieved."""
    fut = getattr(client, "_disconnected", None)
    if isinstance(fut, asyncio.Future) and fut.done() and not fut.cancelled():
        fut.exception()


def _cut(client: aiomqtt.Client) -> None:
    sock = client._client.socket()  # an unclean drop is what a dying device does
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class HouseholdSim:
    """A household's routine, wristband and sensors, turned into messages window by window."""

    def __init__(self, house: Household, seed: str, start: float, imu_rate_hz: float = 0.0) -> None:
        rng = random.Random(seed)
        self.house = house
        self.routine = Routine(draw_profile(rng), rng.randint(0, 2**31), house.rooms())
        band = house.device("wristband")
        self.wristband: Wristband | None = (
            new_wristband(band, (house.lat, house.lon), rng, start, imu_rate_hz) if band else None)
        self.sensors: dict[str, SensorState] = {
            d.device_id: new_state(d, rng, start) for d in house.devices if d.role not in {"wristband", "watch"}}
        self.silent_from: float | None = None  # collapse: nobody moves from then on
        self.skip_checkin = False
        self._rng = rng

    def window(self, v0: float, v1: float) -> list[tuple[float, SimDevice, str, dict[str, object], int]]:
        """Every message due in [v0, v1): (virtual time, device, message, body, qos)."""
        out: list[tuple[float, SimDevice, str, dict[str, object], int]] = []
        for ev in self.routine.events(v0, v1):
            if self.silent_from is not None and ev.ts >= self.silent_from:
                break
            if ev.role == "checkin":
                band = self.wristband
                if band is not None and band.worn and not self.skip_checkin:
                    out.append((ev.ts, band.device, "checkin", {}, 1))
                continue
            device = self.house.device(ev.role, ev.room if ev.role == "motion" else None)
            if device is None:
                continue
            state = self.sensors[device.device_id]
            out.append((ev.ts, device, "state", state_body(state, ev.body, self._rng.random() < 0.05), 1))
        for state in self.sensors.values():
            state.drain((v1 - v0) / 3600)
            while state.next_heartbeat < v1:
                out.append((max(state.next_heartbeat, v0), state.device, "heartbeat", heartbeat_body(state), 0))
                state.next_heartbeat += HEARTBEAT_S
        if self.wristband is not None:
            out.extend((t, self.wristband.device, m, b, q) for t, m, b, q in self.wristband.emits(v0, v1, self.routine))
        return out


class Fleet:
    """Runs households on a virtual clock through links; scenarios inject events while it runs.

    households: the simulated households (provisioned: every device has its password).
    links: the connections; every device of every household must belong to exactly one.
    clock: the virtual clock.
    stats: shared counters.
    seed: reproducible routines and values.
    imu_rate_hz: wristband accelerometer sample rate (0: no IMU snippets).
    """

    def __init__(self, households: Sequence[Household], links: Sequence[Link], clock: VirtualClock,
                 stats: Stats, *, seed: int = 1, imu_rate_hz: float = 0.0) -> None:
        self.clock = clock
        self.stats = stats
        self.links = list(links)
        self.link_of: dict[str, Link] = {d.device_id: lk for lk in self.links for d in lk.devices}
        start = clock.now()
        self.sims = {h.household_id: HouseholdSim(h, f"{seed}:{h.household_id}", start, imu_rate_hz)
                     for h in households}
        self.by_resident = {h.resident_id: self.sims[h.household_id] for h in households}
        stats.devices = len(self.link_of)
        stats.connections = len(self.links)
        self._seq = itertools.count(1)
        self._run_tag = f"{int(time.time()) % 100000:05d}{random.Random().randrange(1000):03d}"
        self._pending: set[asyncio.Task[None]] = set()
        self._critical = asyncio.Semaphore(200)

    def payload(self, device: SimDevice, body: dict[str, object], ts: float) -> bytes:
        """A native v1 payload with a message id unique to this run."""
        out = {"v": 1, "id": f"s{self._run_tag}-{next(self._seq)}", "ts": round(ts, 3), **body}
        return json.dumps(out, separators=(",", ":")).encode()

    async def send(self, device: SimDevice, message: str, body: dict[str, object], qos: int = 1,
                   ts: float | None = None) -> None:
        """Publish one message of a device now (scenario injection); errors are counted, not raised."""
        # Never a future timestamp: the hub refuses those (the clock runs behind, this is the backstop).
        stamp = min(self.clock.now() if ts is None else ts, time.time())
        link = self.link_of.get(device.device_id)
        if link is None:  # a device the caller left without a connection
            self.stats.dropped += 1
            return
        try:
            if await link.publish(device, message, self.payload(device, body, stamp), qos):
                self.stats.published += 1
                self.stats.kinds[message] += 1
        except aiomqtt.MqttError as err:
            self.stats.errors += 1
            log.debug("publish %s/%s failed: %s", device.device_id, message, err)

    def _spawn(self, device: SimDevice, message: str, body: dict[str, object], qos: int, ts: float) -> None:
        async def critical() -> None:
            async with self._critical:
                await self.send(device, message, body, qos, ts)

        task = asyncio.create_task(critical())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def run(self, stop: asyncio.Event, duration_s: float | None = None, progress: TextIO | None = None) -> None:
        """Connect every link, play the routines until `stop` or `duration_s`, then disconnect."""
        async with asyncio.TaskGroup() as tg:
            link_stop = asyncio.Event()
            for link in self.links:
                tg.create_task(link.run(link_stop))
            if progress is not None:
                tg.create_task(self._progress(progress, link_stop))
            try:
                await self.wait_connected(30)
                await self._schedule(stop, duration_s)
            finally:
                if self._pending:
                    await asyncio.wait(self._pending, timeout=10)
                link_stop.set()
        if progress is not None:
            progress.write("\n")

    async def wait_connected(self, within_s: float = 30.0) -> bool:
        """True once every link is connected."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if all(link.ready.is_set() for link in self.links):
                return True
            await asyncio.sleep(0.05)
        return False

    async def _schedule(self, stop: asyncio.Event, duration_s: float | None) -> None:
        heap: list[tuple[float, int, SimDevice, str, dict[str, object], int]] = []
        filled = self.clock.now()
        end = time.monotonic() + duration_s if duration_s is not None else None
        while not stop.is_set() and (end is None or time.monotonic() < end):
            now = self.clock.now()
            if now >= time.time():
                log.info("virtual time caught up with real time; the run ends here")
                return
            while filled <= now + WINDOW_S:
                for sim in self.sims.values():
                    for ts, device, message, body, qos in sim.window(filled, filled + WINDOW_S):
                        heapq.heappush(heap, (ts, next(self._seq), device, message, body, qos))
                filled += WINDOW_S
            burst = 0
            while heap and heap[0][0] <= now:
                ts, _, device, message, body, qos = heapq.heappop(heap)
                if qos:
                    self._spawn(device, message, body, qos, ts)
                else:
                    await self.send(device, message, body, 0, ts)
                burst += 1
                if burst % 500 == 0:
                    await asyncio.sleep(0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)

    async def _progress(self, out: TextIO, stop: asyncio.Event) -> None:
        last, last_t = 0, time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            now = time.monotonic()
            rate = (self.stats.published - last) / max(now - last_t, 1e-6)
            last, last_t = self.stats.published, now
            s = self.stats
            out.write(f"\r[fleet] {now - s.started:6.1f} s  connections {s.connected}/{s.connections}"
                      f"  devices {s.devices}  msgs {s.published} ({rate:,.0f}/s)  errors {s.errors}"
                      f"  dropped {s.dropped}   ")
            out.flush()

    def storm(self) -> None:
        """Every connection drops at the same moment and reconnects at once."""
        for link in self.links:
            link.sever(0.0)

    def sever(self, device: SimDevice, offline_s: float) -> None:
        """Take a device's connection away for `offline_s` seconds (last will → offline)."""
        self.link_of[device.device_id].sever(offline_s)


def direct_links(households: Sequence[Household], host: str, port: int, root: str,
                 stats: Stats) -> list[DirectLink]:
    """One connection per device, each with the device's own account."""
    return [DirectLink(d, host, port, root, stats) for h in households for d in h.devices]


def progress_stream(enabled: bool) -> TextIO | None:
    """stderr when progress is wanted and it is a terminal or explicitly asked for."""
    return sys.stderr if enabled else None
