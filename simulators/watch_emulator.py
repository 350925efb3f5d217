"""A 3G elder watch over TCP: LK link-keeps, UD positions and AL alarms, waiting for the acks real watches need."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime
from types import TracebackType

import aiomqtt

from devices.watch3g import WatchBridge, WatchGateway, build_al, build_lk, build_ud, encode_status
from hub.errors import EldercareError

log = logging.getLogger(__name__)


class WatchError(EldercareError):
    """The watch could not reach its gateway or got no acknowledgement."""


class WatchEmulator:
    """`async with WatchEmulator("8800000001", host, port) as w: await w.alarm(["sos"], 22.5, 114.0)`.

    device_id: the watch's id (IMEI-like; letters and digits).
    host, port: the watch gateway's TCP endpoint.
    ack_timeout: seconds to wait for an acknowledgement before resending.
    retries: resends of an unacknowledged LK or AL before giving up.
    """

    def __init__(self, device_id: str, host: str, port: int, *, ack_timeout: float = 5.0, retries: int = 3) -> None:
        self.device_id = device_id
        self._host, self._port = host, port
        self._ack_timeout = ack_timeout
        self._retries = retries
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._acks: asyncio.Queue[bytes] = asyncio.Queue()
        self._listener: asyncio.Task[None] | None = None
        self.battery = 80
        self.sent: list[bytes] = []

    async def __aenter__(self) -> WatchEmulator:
        await self.connect()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the TCP connection and say hello with an LK (the gateway learns who we are)."""
        try:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        except OSError as err:
            raise WatchError(f"no watch gateway at {self._host}:{self._port}: {err.strerror}") from err
        self._listener = asyncio.create_task(self._listen())
        await self.link_keep()

    async def close(self) -> None:
        """Hang up."""
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._writer = None

    async def _listen(self) -> None:
        assert self._reader is not None
        buffer = b""
        while True:
            chunk = await self._reader.read(4096)
            if not chunk:
                return
            buffer += chunk
            while b"]" in buffer:
                frame, _, buffer = buffer.partition(b"]")
                await self._acks.put(frame[frame.find(b"[") + 1:])

    async def _send_acked(self, frame: bytes, expect: str) -> float:
        """Send until the gateway acknowledges with content `expect`; returns seconds to the ack."""
        assert self._writer is not None
        loop = asyncio.get_running_loop()
        for _ in range(self._retries + 1):
            sent = loop.time()
            self._writer.write(frame)
            await self._writer.drain()
            self.sent.append(frame)
            try:
                while True:
                    ack = await asyncio.wait_for(self._acks.get(), self._ack_timeout)
                    if ack.split(b"*")[-1].split(b",")[0] == expect.encode():
                        return loop.time() - sent
            except TimeoutError:
                log.debug("watch %s: no %s ack; resending", self.device_id, expect)
        raise WatchError(f"watch {self.device_id}: no {expect} acknowledgement after {self._retries + 1} tries")

    async def link_keep(self, steps: int = 0) -> float:
        """LK with battery and steps; the watch reboots when it gets no LK answer."""
        return await self._send_acked(build_lk(self.device_id, self.battery, steps), "LK")

    async def position(self, lat: float | None, lon: float | None) -> None:
        """A UD position frame (no ack expected); None coordinates send an invalid fix."""
        assert self._writer is not None
        valid = lat is not None and lon is not None
        frame = build_ud(self.device_id, datetime.now(UTC), lat or 0.0, lon or 0.0, valid, self.battery)
        self._writer.write(frame)
        await self._writer.drain()
        self.sent.append(frame)

    async def alarm(self, alarms: list[str], lat: float | None, lon: float | None) -> float:
        """An AL frame with the alarm bits set; resent until the gateway answers AL."""
        valid = lat is not None and lon is not None
        frame = build_al(self.device_id, datetime.now(UTC), lat or 0.0, lon or 0.0, valid, self.battery,
                         encode_status(alarms))
        return await self._send_acked(frame, "AL")


class LocalWatchGateway:
    """A watch gateway in this process, bridging each watch with its own broker account.

    For hubs that do not run the watch gateway themselves: the bridge publishes each watch's
    messages on `<root>/watch3g/<id>/...` as that watch (the ACL allows a device its own prefix).
    passwords: watch id → broker password.
    """

    def __init__(self, mqtt_host: str, mqtt_port: int, root: str, passwords: dict[str, str]) -> None:
        self._mqtt = (mqtt_host, mqtt_port)
        self._root = root
        self._passwords = passwords
        self._clients: dict[str, aiomqtt.Client] = {}
        self._lock = asyncio.Lock()
        self.gateway: WatchGateway | None = None

    async def _client(self, device_id: str) -> aiomqtt.Client:
        async with self._lock:
            known = self._clients.get(device_id)
            if known is not None:
                return known
            avail = f"{self._root}/watch3g/{device_id}/availability"
            will = aiomqtt.Will(avail, json.dumps({"v": 1, "state": "offline"}), qos=1, retain=True)
            for attempt in range(30):  # the broker may still be reloading its password file
                client = aiomqtt.Client(*self._mqtt, username=device_id, password=self._passwords[device_id],
                                        identifier=f"simwatch-{device_id}", will=will)
                try:
                    await client.__aenter__()
                    break
                except aiomqtt.MqttError:
                    if attempt == 29:
                        raise
                    await asyncio.sleep(0.2)
            self._clients[device_id] = client
            return client

    async def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        device_id = topic.split("/")[-2]
        if device_id not in self._passwords:
            raise WatchError(f"unknown watch {device_id}")
        await (await self._client(device_id)).publish(topic, payload, qos=qos, retain=retain)

    async def __aenter__(self) -> LocalWatchGateway:
        bridge = WatchBridge(self._publish, root=self._root,
                             last_known=lambda d: self.gateway.last_known_location(d) if self.gateway else None)
        self.gateway = WatchGateway(bridge.on_frame, on_error=bridge.on_error, on_online=bridge.on_online,
                                    on_offline=bridge.on_offline)
        await self.gateway.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self.gateway is not None:
            await self.gateway.close()
        for client in self._clients.values():
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)
        self._clients.clear()

    @property
    def port(self) -> int:
        """The TCP port watches connect to."""
        assert self.gateway is not None
        return self.gateway.port
