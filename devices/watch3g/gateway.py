"""The asyncio TCP server the watches connect to: frames in, acknowledgements out, frames to a sink."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import TracebackType

from devices.watch3g.encoding import reply_for
from devices.watch3g.errors import FrameError, FrameTooLarge
from devices.watch3g.frames import parse_frame
from devices.watch3g.guard import GatewayLimits, GatewayStats, IsProvisioned, LastFix, Throttle, impossible_move
from devices.watch3g.model import Frame, Location
from devices.watch3g.splitter import DEFAULT_MAX_FRAME, FrameSplitter, Skipped

logger = logging.getLogger(__name__)

FrameSink = Callable[[Frame], Awaitable[None]]
ErrorSink = Callable[[str | None, str, bytes], Awaitable[None]]
PresenceSink = Callable[[str], Awaitable[None]]

_READ_SIZE = 4096
_SAMPLE = 64
_MAX_REMEMBERED = 10_000


async def _ignore_error(_device_id: str | None, _reason: str, _raw: bytes) -> None:
    return None


async def _ignore_presence(_device_id: str) -> None:
    return None


class _Refused(Exception):
    """Ends a connection the gateway will not serve (an IMEI that is not provisioned)."""


@dataclasses.dataclass
class _Connection:
    device_id: str | None = None
    writer: asyncio.StreamWriter | None = None
    address: str | None = None
    suspect: set[str] = dataclasses.field(default_factory=set)


class WatchGateway:
    """TCP server for 3G watches; use as `async with WatchGateway(on_frame, port=0) as gw: gw.port`.

    on_frame: awaited for every decoded frame, in order per connection. An alarm frame (AL...)
        is acknowledged only after on_frame returned, so the watch resends it if the hub did
        not get it; every other acknowledgement is sent before on_frame is called.
    on_error: awaited with (device id or None, reason, first 64 raw bytes) for a malformed frame,
        skipped bytes, an oversized frame or a failing on_frame. The connection carries on,
        except after an oversized frame.
    on_online / on_offline: awaited when a device's first connection identifies itself and when
        its last connection closes.
    on_duplicate: awaited (at most once a minute per watch) when a second connection speaks as a
        watch that has a live one: the newer connection stays, the older is closed, and the newer
        one's frames are marked suspect (an SOS among them is still delivered, marked unverified).
    is_provisioned: awaited with each new IMEI a connection speaks as; False closes the connection
        with no acknowledgement, no delivery, no presence (counted in `stats`, logged once a minute).
    limits: connection bounds, idle times and the source-network allow-list (GatewayLimits).
    last_fix: awaited when a watch first speaks and the gateway holds no trusted fix for it (after a
        restart): the hub's last stored location seeds the impossible-speed check.
    host, port: where to listen (port 0 picks a free port; read it from `port`).
    idle_timeout: seconds without data before a connection is closed (watches send LK every
        5-8 minutes, so the default leaves room for one missed LK).
    quiet_flush: seconds of silence after which a frame whose length field is wrong is settled
        at its first ']' instead of waiting for more bytes.
    max_frame: largest frame accepted; a longer unterminated frame closes the connection.
    sink_timeout: limit for each on_frame call and each acknowledgement write.
    clock: unix time source (tests pass a fake).
    """

    def __init__(self, on_frame: FrameSink, *, on_error: ErrorSink | None = None,
                 on_online: PresenceSink | None = None, on_offline: PresenceSink | None = None,
                 host: str = "127.0.0.1", port: int = 0, idle_timeout: float = 900.0,
                 quiet_flush: float = 1.0, max_frame: int = DEFAULT_MAX_FRAME,
                 sink_timeout: float = 10.0, clock: Callable[[], float] = time.time,
                 on_duplicate: PresenceSink | None = None, is_provisioned: IsProvisioned | None = None,
                 limits: GatewayLimits | None = None, last_fix: LastFix | None = None) -> None:
        self._on_frame = on_frame
        self._last_fix = last_fix
        self._on_duplicate = on_duplicate or _ignore_presence
        self._is_provisioned = is_provisioned
        self._limits = limits or GatewayLimits(idle_timeout=idle_timeout)
        idle_timeout = self._limits.idle_timeout
        self.stats = GatewayStats()
        self._per_address: dict[str | None, int] = {}
        self._live: dict[str, _Connection] = {}  # one live connection per IMEI
        self._trusted_at: dict[str, float] = {}  # arrival time of each trusted fix (the device's clock is not)
        self._log_once = Throttle(60.0)
        self._event_once = Throttle(60.0)
        self._on_error = on_error or _ignore_error
        self._on_online = on_online or _ignore_presence
        self._on_offline = on_offline or _ignore_presence
        self._host = host
        self._port = port
        self._idle_timeout = idle_timeout
        self._quiet_flush = quiet_flush
        self._max_frame = max_frame
        self._sink_timeout = sink_timeout
        self._clock = clock
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._connections: dict[str, int] = {}
        self._last_location: dict[str, Location] = {}

    @property
    def port(self) -> int:
        """The bound TCP port (after start)."""
        if self._server is None:
            raise RuntimeError("gateway not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def connected_devices(self) -> frozenset[str]:
        """Device ids with at least one open, identified connection."""
        return frozenset(self._connections)

    def last_known_location(self, device_id: str) -> Location | None:
        """The latest valid fix seen from a device, its `time` set (device time or arrival time)."""
        return self._last_location.get(device_id)

    async def start(self) -> None:
        """Start listening."""
        self._server = await asyncio.start_server(self._handle, self._host, self._port)
        logger.info("watch gateway listening on %s:%d", self._host, self.port)

    async def close(self) -> None:
        """Stop listening and close every connection (each device goes offline)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> WatchGateway:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def _refusal(self, address: str | None) -> str | None:
        if not self._limits.allows(address):
            return "refused_network"
        if len(self._handlers) >= self._limits.max_connections:
            return "refused_max_connections"
        if self._per_address.get(address, 0) >= self._limits.max_per_address:
            return "refused_per_address"
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if peer else None
        refusal = self._refusal(address)
        if refusal is not None:
            self.stats.count(refusal)
            if self._log_once(refusal):
                logger.warning("watch gateway: %s (counted in stats; logged once a minute)", refusal)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            return
        self._handlers.add(task)
        self._per_address[address] = self._per_address.get(address, 0) + 1
        conn = _Connection(writer=writer, address=address)
        try:
            await self._serve(reader, writer, conn)
        except asyncio.CancelledError:
            pass  # gateway shutting down
        except _Refused:
            pass  # counted where it was decided
        except (ConnectionError, TimeoutError) as err:
            logger.info("watch %s connection lost: %s", conn.device_id, type(err).__name__)
        except Exception:  # one broken connection must never take the server down
            logger.exception("watch connection failed (device %s)", conn.device_id)
        finally:
            self._handlers.discard(task)
            left = self._per_address.pop(address, 1) - 1
            if left > 0:
                self._per_address[address] = left
            if conn.device_id is not None and self._live.get(conn.device_id) is conn:
                del self._live[conn.device_id]
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            if conn.device_id is not None:
                await self._gone(conn.device_id)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     conn: _Connection) -> None:
        splitter = FrameSplitter(self._max_frame)
        while True:
            waiting = splitter.pending > 0
            # Until a provisioned watch speaks, a connection gets only the short hello time.
            idle = self._idle_timeout if conn.device_id else min(self._limits.hello_timeout, self._idle_timeout)
            try:
                async with asyncio.timeout(self._quiet_flush if waiting else idle):
                    data = await reader.read(_READ_SIZE)
            except TimeoutError:
                if not waiting:
                    self.stats.count("idle_closed" if conn.device_id else "hello_timeout")
                    logger.info("watch %s idle, closing", conn.device_id)
                    return
                items = splitter.flush()
            else:
                if not data:
                    for item in splitter.flush():
                        await self._process(item, writer, conn)
                    return
                try:
                    items = splitter.feed(data)
                except FrameTooLarge as err:
                    await self._report(conn.device_id, f"{err.reason}: {err.detail}", data[:_SAMPLE])
                    return
            for item in items:
                await self._process(item, writer, conn)

    async def _process(self, item: bytes | Skipped, writer: asyncio.StreamWriter, conn: _Connection) -> None:
        if isinstance(item, Skipped):
            await self._report(conn.device_id, f"skipped {item.size} bytes: {item.reason}", item.sample)
            return
        try:
            frame = parse_frame(item)
        except FrameError as err:
            await self._report(err.device_id or conn.device_id, f"{err.reason}: {err.detail}", item[:_SAMPLE])
            return
        if conn.device_id != frame.device_id and not await self._provisioned(frame.device_id):
            raise _Refused
        await self._identify(conn, frame.device_id)
        for warning in frame.warnings:
            logger.info("watch %s %s frame: %s", frame.device_id, frame.kind, warning)
        frame = self._judge(frame, conn)
        reply = reply_for(frame)
        if reply is not None and not frame.is_alarm_frame:
            await self._send(writer, reply)
        if await self._deliver(frame) and reply is not None and frame.is_alarm_frame:
            await self._send(writer, reply)

    async def _provisioned(self, device_id: str) -> bool:
        if self._is_provisioned is None:
            return True
        try:
            async with asyncio.timeout(self._sink_timeout):
                if await self._is_provisioned(device_id):
                    return True
        except Exception as err:  # noqa: BLE001 - cannot tell: refuse, the watch retries
            logger.warning("watch gateway: provisioning lookup failed: %s", type(err).__name__)
        self.stats.count("unknown_imei")
        if self._log_once("unknown_imei"):
            logger.warning("watch %s is not provisioned; connection closed (%d unknown so far; logged once a minute)",
                           device_id, self.stats.counts["unknown_imei"])
        return False

    def _judge(self, frame: Frame, conn: _Connection) -> Frame:
        """Mark what is not believed; only believed fixes become the trusted position."""
        suspect = set(conn.suspect)
        if frame.location is not None:
            trusted = self._last_location.get(frame.device_id)
            now = self._clock()
            elapsed = now - self._trusted_at.get(frame.device_id, now)
            if trusted is not None and impossible_move(trusted, frame.location, elapsed):
                suspect.add("impossible_speed")
                self.stats.count("impossible_speed")
                if self._log_once("speed:" + frame.device_id):
                    logger.warning("watch %s reported a fix it cannot have reached; flagged", frame.device_id)
            elif not suspect:
                self._remember(frame)
        return dataclasses.replace(frame, suspect=frozenset(suspect)) if suspect else frame

    async def _deliver(self, frame: Frame) -> bool:
        try:
            async with asyncio.timeout(self._sink_timeout):
                await self._on_frame(frame)
        except Exception as err:  # noqa: BLE001 - the sink's failure is reported, the connection lives
            await self._report(frame.device_id, f"sink_failed: {type(err).__name__}", frame.wire[:_SAMPLE])
            return False
        return True

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        async with asyncio.timeout(self._sink_timeout):
            await writer.drain()

    async def _report(self, device_id: str | None, reason: str, raw: bytes) -> None:
        logger.warning("watch %s: %s", device_id, reason)
        try:
            await self._on_error(device_id, reason, raw[:_SAMPLE])
        except Exception:  # a failing error sink must not break the connection
            logger.exception("on_error failed for watch %s", device_id)

    async def _identify(self, conn: _Connection, device_id: str) -> None:
        if conn.device_id == device_id:
            return
        if conn.device_id is not None:
            logger.warning("connection of watch %s now speaks as %s", conn.device_id, device_id)
            old, conn.device_id = conn.device_id, None
            if self._live.get(old) is conn:
                del self._live[old]
            await self._gone(old)
        other = self._live.get(device_id)
        if other is not None and other.writer is not None:
            # One live connection per IMEI. The newer stays, so a real watch that reconnects is never
            # locked out by a connection that came first; what the newer one says is marked suspect.
            self.stats.count("second_connection")
            conn.suspect.add("second_connection")
            other.writer.close()
            if self._event_once(device_id):
                logger.warning("watch %s: a second connection speaks as it; the older one is closed", device_id)
                await self._presence(self._on_duplicate, device_id)
        self._live[device_id] = conn
        conn.device_id = device_id
        if self._last_fix is not None and device_id not in self._last_location:
            await self._seed(device_id)
        self._connections[device_id] = self._connections.get(device_id, 0) + 1
        if self._connections[device_id] == 1:
            logger.info("watch %s online", device_id)
            await self._presence(self._on_online, device_id)

    async def _gone(self, device_id: str) -> None:
        left = self._connections.get(device_id, 0) - 1
        if left > 0:
            self._connections[device_id] = left
            return
        self._connections.pop(device_id, None)
        logger.info("watch %s offline", device_id)
        await self._presence(self._on_offline, device_id)

    async def _presence(self, sink: PresenceSink, device_id: str) -> None:
        try:
            async with asyncio.timeout(self._sink_timeout):
                await sink(device_id)
        except Exception as err:  # noqa: BLE001 - availability is best effort; frames keep flowing
            logger.warning("presence callback failed for watch %s: %s", device_id, type(err).__name__)

    async def _seed(self, device_id: str) -> None:
        assert self._last_fix is not None
        try:
            async with asyncio.timeout(self._sink_timeout):
                fix = await self._last_fix(device_id)
        except Exception as err:  # noqa: BLE001 - no seed: the next fix is compared with nothing
            logger.warning("watch %s: last fix lookup failed: %s", device_id, type(err).__name__)
            return
        if fix is not None and fix.time is not None and device_id not in self._last_location:
            self._last_location[device_id] = fix
            self._trusted_at[device_id] = min(self._clock(), fix.time.timestamp())

    def _remember(self, frame: Frame) -> None:
        location = frame.location
        assert location is not None
        if location.time is None:
            location = dataclasses.replace(location, time=datetime.fromtimestamp(self._clock(), UTC))
        self._last_location.pop(frame.device_id, None)
        self._last_location[frame.device_id] = location
        self._trusted_at[frame.device_id] = self._clock()
        if len(self._last_location) > _MAX_REMEMBERED:
            forget = next(iter(self._last_location))
            del self._last_location[forget]
            self._trusted_at.pop(forget, None)
