"""Shared connections the way household gateways make them: zigbee2mqtt topics, or a native gateway account."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import aiomqtt

from simulators.fleet import Link, Stats
from simulators.household import Household, SimDevice

log = logging.getLogger(__name__)

Z2M_ROOT = "zigbee2mqtt"
MODES = ("z2m", "native")
# Devices a zigbee coordinator carries; wearables with GNSS and cellular never ride on zigbee.
ZIGBEE_TYPES = frozenset({"door", "motion", "bed", "radar", "smoke", "leak"})


def z2m_payload(device: SimDevice, message: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """The zigbee2mqtt state object for a native message (None: zigbee2mqtt would not publish it)."""
    out: dict[str, Any] = {"linkquality": 120}
    for key in ("battery", "battery_low", "tamper"):
        if key in body:
            out[key] = body[key]
    if message == "heartbeat":
        return out
    if message != "state":
        return None
    if "contact" in body:
        out["contact"] = body["contact"] == "closed"  # zigbee2mqtt: contact true means closed
    if "motion" in body:
        out["occupancy"] = body["motion"]
    if "occupied" in body:
        out["occupancy"] = body["occupied"]
    if "presence" in body:
        out["presence"] = body["presence"]
    if "fall" in body:
        out["fall_down_status"] = {"none": "normal", "maybe_fall": "suspected_fall", "fall": "fall"}[str(body["fall"])]
    if "leak" in body:
        out["water_leak"] = body["leak"]
    if "smoke" in body:
        out["smoke"] = body["smoke"]
    if body.get("action"):
        out["action"] = body["action"]
    return out


class GatewayLink(Link):
    """One connection carrying many devices.

    mode "z2m": publishes `zigbee2mqtt/<friendly name>` state objects (home sensors only).
    mode "native": publishes native topics for every device through one gateway account.
    host, port, username, password: the broker and the gateway's account.
    root: native topic root (mode "native"); z2m_base: zigbee2mqtt's base topic (mode "z2m").
    """

    def __init__(self, name: str, devices: Sequence[SimDevice], mode: str, host: str, port: int,
                 username: str, password: str, root: str, stats: Stats, z2m_base: str = Z2M_ROOT) -> None:
        if mode not in MODES:
            raise ValueError(f"gateway mode must be one of {MODES}")
        super().__init__(host, port, stats)
        self.name = self.label = name
        self.devices = list(devices)
        self.mode = mode
        self._user, self._password = username, password
        self._root = root.rstrip("/")
        self._z2m_base = z2m_base.rstrip("/")

    def topic(self, device: SimDevice, message: str) -> str:
        """Where a device's message goes through this gateway."""
        if self.mode == "z2m":
            return f"{self._z2m_base}/{device.z2m_name}" + ("/availability" if message == "availability" else "")
        return f"{self._root}/{device.device_type}/{device.device_id}/{message}"

    def _availability(self, device: SimDevice, online: bool) -> bytes:
        state = "online" if online else "offline"
        return json.dumps({"state": state} if self.mode == "z2m" else {"v": 1, "state": state}).encode()

    def _connect(self) -> aiomqtt.Client:
        will_topic = (f"{self._z2m_base}/bridge/state" if self.mode == "z2m"
                      else f"{self._root}/gateway/{self.name}/state")
        will = aiomqtt.Will(will_topic, json.dumps({"state": "offline"}), qos=1, retain=True)
        return aiomqtt.Client(self._host, self._port, identifier=f"simgw-{self.name}",
                              username=self._user, password=self._password, will=will,
                              keepalive=60, timeout=30, max_queued_outgoing_messages=100_000)

    async def _announce(self, client: aiomqtt.Client) -> None:
        for device in self.devices:
            await client.publish(self.topic(device, "availability"), self._availability(device, True),
                                 qos=0, retain=True)

    async def publish(self, device: SimDevice, message: str, payload: bytes, qos: int) -> bool:
        """Translate (z2m) or pass through (native) and publish on the shared connection."""
        client = self.client
        if client is None or not self.ready.is_set():
            self._stats.dropped += 1
            return False
        if self.mode == "z2m":
            body = json.loads(payload)
            z2m = z2m_payload(device, message, body)
            if z2m is None:
                return False
            payload = json.dumps(z2m, separators=(",", ":")).encode()
        await client.publish(self.topic(device, message), payload, qos=qos)
        return True


def gateway_links(households: Sequence[Household], mode: str, devices_per_gateway: int, host: str, port: int,
                  username: str, password: str, root: str, stats: Stats,
                  z2m_base: str = Z2M_ROOT) -> tuple[list[GatewayLink], list[SimDevice]]:
    """Group devices onto shared connections (whole households per gateway); returns (links, left over).

    In z2m mode wearables are left over: they keep their own connections.
    """
    links: list[GatewayLink] = []
    batch: list[SimDevice] = []
    leftover: list[SimDevice] = []
    for house in households:
        for d in house.devices:
            if mode == "z2m" and d.device_type not in ZIGBEE_TYPES:
                leftover.append(d)
            else:
                batch.append(d)
        if len(batch) >= devices_per_gateway:
            links.append(GatewayLink(f"gw{len(links) + 1}", batch, mode, host, port, username, password, root, stats,
                                     z2m_base))
            batch = []
    if batch:
        links.append(GatewayLink(f"gw{len(links) + 1}", batch, mode, host, port, username, password, root, stats,
                                     z2m_base))
    return links, leftover
