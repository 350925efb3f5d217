"""Turns inbound messages into observations, alerts and rows; bad input is dead-lettered, never fatal."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from alerts.model import Binding, Trigger
from alerts.rules import triggers_for
from devices.device_type import DeviceType
from devices.errors import DecodeError
from devices.gateways import zigbee2mqtt
from devices.observation import Observation
from devices.topics import DEVICE_ID, DeviceTopic, parse_topic
from hub.health import Health
from hub.ingest.bindings import Bindings
from hub.ingest.fastdecode import FastDecoder
from hub.ingest.inbound import Inbound
from hub.ingest.partition import INTERNAL_ROOT, STATEFUL_KINDS, Partition, unwrap, wrap
from hub.ingest.ratelimit import REPORTED_DEVICES, DeviceLimiter, RateLimits, device_key
from hub.ingest.writer import Writer
from hub.plugins import Registry
from hub.shutdown import raise_if_cancelled

log = logging.getLogger(__name__)

_TOPIC_CACHE_MAX = 50_000


class Detector(Protocol):
    """Something that watches observations and may raise alerts (falls, inactivity, geofences)."""

    def observe(self, obs: Observation, binding: Binding) -> list[Trigger]:
        """React to one observation."""
        ...


class Pipeline:
    """Two inbound queues (critical first) drained by one consumer into the writer."""

    def __init__(
        self,
        topic_root: str,
        device_types: Registry[DeviceType],
        bindings: Bindings,
        writer: Writer,
        health: Health,
        max_payload_bytes: int,
        max_skew_s: float,
        queue_max: int,
        detectors: list[Detector] | None = None,
        zigbee2mqtt_base: str = "",
        partition: Partition | None = None,
        limits: RateLimits | None = None,
    ) -> None:
        self.partition = partition or Partition()
        self.limiter = DeviceLimiter(limits or RateLimits())
        self.forward: Callable[[str, bytes], None] | None = None  # publishes to another worker's inbox
        self._root = topic_root
        self._z2m_base = zigbee2mqtt_base.rstrip("/")
        self._types = device_types
        self._decoder = FastDecoder(device_types)
        self._bindings = bindings
        self._writer = writer
        self._health = health
        self._max_payload = max_payload_bytes
        self._max_skew = max_skew_s
        self._queue_max = queue_max
        self.detectors = detectors or []
        self._urgent: deque[Inbound] = deque()  # SOS and falls overtake everything queued
        self._critical: deque[Inbound] = deque()
        self._telemetry: deque[Inbound] = deque()
        self._ready = asyncio.Event()
        self._topics: dict[str, DeviceTopic] = {}  # parsed native topics: a device uses the same few
        self.on_drained: Callable[[], None] | None = None  # resumes a source paused by backpressure
        self._reported = 0  # devices with a shed counter of their own

    # Called by the MQTT source on the event loop, between packets it reads.
    def critical_room(self) -> bool:
        """True while the critical queue may take more."""
        return len(self._critical) + len(self._urgent) < self._queue_max

    def telemetry_room(self) -> bool:
        """True while the telemetry queue may take more; beyond it telemetry is shed."""
        return len(self._telemetry) < self._queue_max

    def deliver(self, item: Inbound) -> None:
        """Enqueue one inbound message (runs on the event loop); a device over its rate is shed here."""
        device = device_key(item.topic, self._z2m_base)
        if not item.topic.startswith(INTERNAL_ROOT + "/") and not self.limiter.admit(device, item.topic, item.urgent):
            self._shed(item, device.rpartition("/")[2])
            return
        if item.urgent:
            self._urgent.append(item)
        else:
            (self._critical if item.critical_hint else self._telemetry).append(item)
        self._ready.set()

    def _shed(self, item: Inbound, device: str) -> None:
        # Acknowledged, so the broker does not hold it: an alarm shed here repeats one that was taken
        # (its kind's bucket is per device), and telemetry over a device's rate is not worth the others' time.
        if item.ack is not None:
            item.ack()
        counters = self._health.counters
        self._health.count("rate_limited_urgent" if item.urgent else "rate_limited")
        name = "rate_limited." + device
        if name not in counters and self._reported >= REPORTED_DEVICES:
            name = "rate_limited.other"
        elif name not in counters:
            self._reported += 1
        self._health.count(name)

    def depths(self) -> dict[str, int]:
        """Current queue depths, for /health and metrics."""
        return {"urgent": len(self._urgent), "critical": len(self._critical), "telemetry": len(self._telemetry)}

    async def run(self) -> None:
        """Consume forever: urgent messages first, then critical ones, then telemetry."""
        while True:
            raise_if_cancelled()
            if not self._urgent and not self._critical and not self._telemetry:
                self._ready.clear()
                await self._ready.wait()
                continue
            await self._writer.wait_for_room()
            for _ in range(16):  # short slices: the writer and escalation get the loop often
                if self._urgent:
                    await self.handle(self._urgent.popleft())
                    break  # end the slice so the writer commits the SOS now
                if self._critical:
                    item = self._critical.popleft()
                elif self._telemetry:
                    item = self._telemetry.popleft()
                else:
                    break
                await self.handle(item)
            self._health.gauges["queue_critical"] = len(self._critical)
            self._health.gauges["queue_telemetry"] = len(self._telemetry)
            if self.on_drained is not None:
                self.on_drained()
            await asyncio.sleep(0)  # let the writer and the API run between slices

    async def _resolve(self, item: Inbound) -> tuple[Binding, str, bytes] | None:
        """Find the device a message is about and its native (message, payload); None: not for us."""
        if self._z2m_base and item.topic.startswith(self._z2m_base + "/"):
            z2m = zigbee2mqtt.parse_topic(item.topic, self._z2m_base)
            if z2m is None:
                return None
            binding = await self._bindings.by_z2m_name(z2m.friendly_name)
            if binding is None:
                raise DecodeError("unknown_device", "no device has this zigbee2mqtt friendly name")
            message, payload = zigbee2mqtt.translate(binding.device_type, z2m, item.payload, item.received)
            return self._check(binding, binding.device_type), message, payload
        topic = self._topics.get(item.topic)
        if topic is None:
            topic = parse_topic(item.topic, self._root)
            if len(self._topics) >= _TOPIC_CACHE_MAX:  # bounded however many devices and suffixes appear
                self._topics.clear()
            self._topics[item.topic] = topic
        if topic.device_type not in self._types:
            raise DecodeError("unknown_type", f"no device type '{topic.device_type}'")
        binding = self._bindings.cached(topic.device_id) or await self._bindings.get(topic.device_id)
        if binding is None:
            raise DecodeError("unknown_device", "device is not provisioned")
        return self._check(binding, topic.device_type), topic.message, item.payload

    def _detect(self, obs: Observation, binding: Binding) -> list[Trigger]:
        triggers: list[Trigger] = []
        for detector in self.detectors:
            try:
                triggers += detector.observe(obs, binding)
            except Exception:  # a detector bug must not stop ingestion of other devices
                self._health.count("detector_errors")
                log.exception("detector %s failed on device %s", type(detector).__name__, obs.device_id)
        return triggers

    async def _detect_forwarded(self, item: Inbound) -> None:
        """Another worker stored this message already; only the detectors run here."""
        try:
            topic, payload, received = unwrap(item.payload)
            resolved = await self._resolve(Inbound(topic, payload, received))
            if resolved is None:
                return
            binding, message, native = resolved
            obs = self._decoder.decode(binding.device_type, binding.device_id, message, native,
                                       datetime.fromtimestamp(received, UTC), self._max_skew)
        except DecodeError:
            self._health.count("forwarded_undecodable")
            return
        finally:
            if item.ack is not None:
                item.ack()
        self._health.count("detected_for_other_worker")
        self._writer.add_triggers(self._detect(obs, binding))

    @staticmethod
    def _check(binding: Binding, device_type: str) -> Binding:
        if not binding.active:
            raise DecodeError("revoked_device", "device was revoked")
        if binding.device_type != device_type:
            raise DecodeError("type_mismatch", f"device is a {binding.device_type}, topic says {device_type}")
        return binding

    async def handle(self, item: Inbound) -> None:
        """Decode, bind, detect and queue one message; a DecodeError becomes a dead letter."""
        if item.topic.startswith(INTERNAL_ROOT + "/"):
            await self._detect_forwarded(item)
            return
        self._health.count("messages_in")
        device_id: str | None = None
        try:
            if len(item.payload) > self._max_payload:
                raise DecodeError("too_large", f"payload of {len(item.payload)} bytes exceeds {self._max_payload}")
            resolved = await self._resolve(item)
            if resolved is None:
                self._health.count("ignored")
                if item.ack is not None:
                    item.ack()
                return
            binding, message, payload = resolved
            device_id = binding.device_id
            received = datetime.fromtimestamp(item.received, UTC)
            obs = self._decoder.decode(binding.device_type, binding.device_id, message, payload, received,
                                       self._max_skew)
        except DecodeError as err:
            if device_id is None:
                device_id = _device_from_topic(item.topic, self._root)
            self._health.count(f"dead_letter.{err.reason}")
            self._writer.dead_letter(item.topic, device_id, err.reason, err.detail, item.payload, item.ack)
            return
        if obs.data.get("verified") is False:
            obs = _doubted(obs)
        triggers = triggers_for(obs, binding)
        if obs.data.get("verified") is False:
            triggers = [_unverified(trigger, obs) for trigger in triggers]
        if self.partition.mine(binding):
            triggers += self._detect(obs, binding)
        elif obs.kind in STATEFUL_KINDS and self.forward is not None:
            owner = Partition(self.partition.workers, self.partition.owner(binding))
            self.forward(owner.inbox, wrap(item.topic, item.payload, item.received))
            self._health.count("forwarded_for_detection")
        if obs.critical:
            self._health.count("critical_in")
        self._writer.add(obs, binding, triggers, item.ack, received, urgent=item.urgent)


def _doubted(obs: Observation) -> Observation:
    """A report its gateway does not believe: kept, but its fix moves into `data` (never the last location)."""
    if obs.location is None:
        return obs
    return dataclasses.replace(obs, location=None, data={**obs.data, "claimed_location": obs.location.as_dict()})


def _unverified(trigger: Trigger, obs: Observation) -> Trigger:
    """Never suppressed: the alert is raised, marked unverified, so operators can judge it."""
    details = {**trigger.details, "verified": False, "suspect": obs.data.get("suspect", [])}
    if "claimed_location" in obs.data:
        details["claimed_location"] = obs.data["claimed_location"]
    return dataclasses.replace(trigger, details=details)


def _device_from_topic(topic: str, root: str) -> str | None:
    """The device id segment of a native topic, when there is a well-formed one (for dead letters).

    It is the level right after `<root>/<type>/`, the one the broker's ACL ties to the publisher:
    a device naming another device deeper in its topic is recorded as itself, never as the other.
    """
    prefix = root.rstrip("/") + "/"
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix):].split("/")
    return parts[1] if len(parts) >= 2 and DEVICE_ID.match(parts[1]) else None
