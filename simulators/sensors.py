"""Home sensors: their native message bodies, heartbeats and slowly draining batteries."""

from __future__ import annotations

import random
from dataclasses import dataclass

from simulators.household import SimDevice

HEARTBEAT_S = 1800.0  # zigbee-class sensors check in about twice an hour
# The message each home sensor type reports its readings on, and the reading of a quiet sensor.
QUIET_STATE: dict[str, dict[str, object]] = {
    "door": {"contact": "closed"},
    "motion": {"motion": False},
    "bed": {"occupied": False},
    "radar": {"presence": False, "fall": "none"},
    "smoke": {"smoke": False},
    "leak": {"leak": False},
}


@dataclass
class SensorState:
    """A home sensor's battery (percent) and when it last checked in (virtual seconds)."""

    device: SimDevice
    battery: float
    drain_per_h: float
    next_heartbeat: float

    def drain(self, hours: float) -> None:
        """Batteries of home sensors last months: a tiny drain per hour."""
        self.battery = max(0.0, self.battery - self.drain_per_h * hours)


def new_state(device: SimDevice, rng: random.Random, start: float) -> SensorState:
    """A sensor with a random charge, checking in at a random point of its heartbeat period."""
    return SensorState(device, rng.uniform(55, 100), rng.uniform(0.002, 0.01), start + rng.uniform(0, HEARTBEAT_S))


def heartbeat_body(state: SensorState) -> dict[str, object]:
    """The periodic check-in of a home sensor."""
    return {"battery": round(state.battery), "battery_low": state.battery < 10}


def state_body(state: SensorState, reading: dict[str, object], with_battery: bool = False) -> dict[str, object]:
    """A `state` message body; the battery rides along now and then, as zigbee sensors do."""
    body = dict(reading)
    if with_battery:
        body["battery"] = round(state.battery)
    return body
