"""Turn watch frames into native v1 hub messages and publish them; `serve` wires it to aiomqtt."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from devices.watch3g.errors import BridgeError
from devices.watch3g.guard import GatewayLimits, IsProvisioned, LastFix
from devices.watch3g.model import Frame, Location

logger = logging.getLogger(__name__)

ROOT = "eldercare/v1"
DEVICE_TYPE = "watch3g"
_PLAUSIBLE_PAST_S = 7 * 86400  # UD2 back-fills are hours old; older device times are broken clocks
_PLAUSIBLE_FUTURE_S = 300

Publish = Callable[[str, bytes, int, bool], Awaitable[None]]
LastKnown = Callable[[str], Location | None]


class Message(NamedTuple):
    """One native message: topic, JSON payload, QoS and retain flag."""

    topic: str
    payload: dict[str, Any]
    qos: int
    retain: bool


def topic(device_id: str, kind: str, root: str = ROOT) -> str:
    """`<root>/watch3g/<device id>/<kind>`."""
    return f"{root}/{DEVICE_TYPE}/{device_id}/{kind}"


def availability_message(device_id: str, online: bool, root: str = ROOT) -> Message:
    """The retained online/offline state of a watch."""
    state = "online" if online else "offline"
    return Message(topic(device_id, "availability", root), {"v": 1, "state": state}, 1, True)


def observed_at(frame: Frame, received_at: float) -> float:
    """The device time when it is plausible, else the arrival time (clocks on watches drift or reset)."""
    if frame.ts is not None:
        device = frame.ts.timestamp()
        if received_at - _PLAUSIBLE_PAST_S <= device <= received_at + _PLAUSIBLE_FUTURE_S:
            return device
    return received_at


def message_id(frame: Frame, kind: str, received_at: float) -> str:
    """Same frame bytes -> same id, so a resent frame is deduplicated by the hub.

    Frames without a device time (LK, vitals) repeat byte for byte while meaning a new
    observation, so their id also includes the arrival second.
    """
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(kind.encode("ascii") + b"\0" + frame.wire)
    if frame.ts is None:
        digest.update(b"@%d" % int(received_at))
    return digest.hexdigest()


def _location(loc: Location | None, *, with_time: bool = False) -> dict[str, Any] | None:
    if loc is None:
        return None
    out: dict[str, Any] = {"lat": loc.lat, "lon": loc.lon, "acc_m": loc.accuracy_m, "src": "gnss"}
    if with_time:
        out["ts"] = loc.time.timestamp() if loc.time else None
    return out


def frame_messages(frame: Frame, *, received_at: float, last_known: Location | None = None,
                   root: str = ROOT) -> list[Message]:
    """All native messages one frame produces (critical ones first)."""
    ts = observed_at(frame, received_at)

    # Never suppressed: what the gateway does not believe is still sent, marked for the hub and operators.
    doubt = {"verified": False, "suspect": sorted(frame.suspect)} if frame.suspect else {}

    def make(kind: str, body: dict[str, Any], qos: int = 0) -> Message:
        payload = {"v": 1, "id": message_id(frame, kind, received_at), "ts": ts, **body, **doubt}
        return Message(topic(frame.device_id, kind, root), payload, qos, False)

    out = _alarm_messages(frame, make, last_known)
    if frame.status is not None:
        located = _location_body(frame)
        if located is not None:
            out.append(make("location", located))
    if frame.status is not None or frame.kind == "LK":
        out.append(make("heartbeat", {
            "battery": frame.battery,
            "signal": frame.signal,
            "worn": False if "removed" in frame.alarms else None,
            "steps": frame.steps,
        }))
    vitals = {
        "heart_rate": frame.heart_rate, "systolic": frame.systolic, "diastolic": frame.diastolic,
        "spo2": frame.spo2, "temperature": frame.body_temp_c,
    }
    if any(v is not None for v in vitals.values()):
        out.append(make("vitals", {k: v for k, v in vitals.items() if v is not None}))
    return out


def _alarm_messages(frame: Frame, make: Callable[[str, dict[str, Any], int], Message],
                    last_known: Location | None) -> list[Message]:
    if frame.status is None:
        return []
    where = {
        "location": _location(frame.location),
        "last_known_location": _location(last_known, with_time=True) if frame.location is None else None,
    }
    out = []
    if "sos" in frame.alarms:
        out.append(make("sos", {**where, "alarms": sorted(frame.alarms)}, 1))
    if "fall" in frame.alarms:
        out.append(make("fall", {**where, "confidence": 1.0}, 1))
    others = sorted(frame.alarms - {"sos", "fall"})
    # An AL frame is an alarm even when no bit we know is set (e.g. bit 22): say so, empty-handed.
    if others or (frame.is_alarm_frame and not frame.alarms):
        out.append(make("alarm", {**where, "alarms": others}, 1))
    return out


def _location_body(frame: Frame) -> dict[str, Any] | None:
    if frame.location is not None:
        return _location(frame.location)
    if not frame.cells and not frame.wifis:
        return None
    # No fix: hand the radio environment on so the hub can resolve it. Wi-Fi names are left out.
    return {
        "lat": None, "lon": None, "acc_m": None, "src": "wifi" if frame.wifis else "cell",
        "cells": [
            {"mcc": c.mcc, "mnc": c.mnc, "lac": c.lac, "cid": c.cid, "rssi": c.rssi} for c in frame.cells
        ],
        "wifis": [{"mac": w.mac, "rssi": w.rssi} for w in frame.wifis],
    }


def encode_payload(payload: dict[str, Any]) -> bytes:
    """Compact, deterministic JSON."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, allow_nan=False).encode("utf-8")


class WatchBridge:
    """Gateway callbacks that publish native messages through `publish(topic, payload, qos, retain)`.

    last_known: returns a device's last valid fix (normally `WatchGateway.last_known_location`).
    clock: unix time source for arrival times.
    root: topic root.
    """

    def __init__(self, publish: Publish, *, last_known: LastKnown | None = None,
                 clock: Callable[[], float] = time.time, root: str = ROOT) -> None:
        self._publish = publish
        self._last_known = last_known or (lambda _device_id: None)
        self._clock = clock
        self._root = root

    async def on_frame(self, frame: Frame) -> None:
        """Publish every message of a frame; raises if any publish fails (alarms then stay un-acked)."""
        messages = frame_messages(frame, received_at=self._clock(),
                                  last_known=self._last_known(frame.device_id), root=self._root)
        for message in messages:
            await self._publish(message.topic, encode_payload(message.payload), message.qos, message.retain)

    async def on_online(self, device_id: str) -> None:
        """Publish the retained 'online' state."""
        await self._send(availability_message(device_id, True, self._root))

    async def on_offline(self, device_id: str) -> None:
        """Publish the retained 'offline' state."""
        await self._send(availability_message(device_id, False, self._root))

    async def on_duplicate(self, device_id: str) -> None:
        """A second connection speaks as this watch: a tamper report operators see (fleet health, alert)."""
        now = self._clock()
        await self._send(Message(topic(device_id, "heartbeat", self._root),
                                 {"v": 1, "id": f"second-connection-{int(now)}", "ts": now, "tamper": True,
                                  "verified": False, "suspect": ["second_connection"]}, 1, False))

    async def on_error(self, device_id: str | None, reason: str, raw: bytes) -> None:
        """Problems are only logged here, by device id and reason; never the bytes."""
        logger.warning("watch %s: %s (%d bytes withheld from the log)", device_id, reason, len(raw))

    async def _send(self, message: Message) -> None:
        await self._publish(message.topic, encode_payload(message.payload), message.qos, message.retain)


# Positional order as the lead's CLI calls it.
async def serve(host: str, port: int, mqtt_host: str, mqtt_port: int = 1883,
                username: str | None = None, password: str | None = None, *, root: str = ROOT,
                max_backoff: float = 30.0, is_provisioned: IsProvisioned | None = None,
                limits: GatewayLimits | None = None, last_fix: LastFix | None = None) -> None:
    """Run the watch gateway and bridge it to an MQTT broker until cancelled, reconnecting as needed.

    is_provisioned: e.g. a DbRoster; unset, every IMEI is served (only for tests and trials).
    limits: connection bounds and the source-network allow-list.
    last_fix: e.g. DbRoster.last_fix: seeds the impossible-speed check after a restart.
    """
    import aiomqtt

    from devices.watch3g.gateway import WatchGateway

    current: list[aiomqtt.Client] = []

    async def publish(topic_: str, payload: bytes, qos: int, retain: bool) -> None:
        if not current:
            raise BridgeError("not connected to the MQTT broker")
        await current[0].publish(topic_, payload, qos=qos, retain=retain)

    gateway: WatchGateway | None = None
    bridge = WatchBridge(publish, last_known=lambda d: gateway.last_known_location(d) if gateway else None,
                         root=root)
    gateway = WatchGateway(bridge.on_frame, on_error=bridge.on_error, on_online=bridge.on_online,
                           on_offline=bridge.on_offline, host=host, port=port, on_duplicate=bridge.on_duplicate,
                           is_provisioned=is_provisioned, limits=limits, last_fix=last_fix)
    async with gateway:
        backoff = 1.0
        while True:
            try:
                client_cm = aiomqtt.Client(mqtt_host, mqtt_port, username=username, password=password)
                async with client_cm as client:
                    current.append(client)
                    backoff = 1.0
                    logger.info("watch bridge connected to MQTT %s:%d", mqtt_host, mqtt_port)
                    for device_id in gateway.connected_devices:  # retained states may be stale
                        await bridge.on_online(device_id)
                    async for _ in client.messages:  # raises MqttError when the connection drops
                        pass
            except aiomqtt.MqttError as err:
                logger.warning("watch bridge lost MQTT (%s); retrying in %.0f s", type(err).__name__, backoff)
            finally:
                current.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)
