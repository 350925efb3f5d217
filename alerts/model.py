"""What an alert is: its types, severities, resolution categories and the trigger that raises it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SEVERITIES = ("critical", "high", "medium", "low")
SEVERITY_RANK = {name: rank for rank, name in enumerate(reversed(SEVERITIES))}

# Alert types and their default severity.
ALERT_TYPES: dict[str, str] = {
    "sos": "critical",
    "fall": "critical",
    "possible_fall": "high",
    "smoke": "critical",
    "water_leak": "high",
    "inactivity": "high",
    "no_morning_activity": "high",
    "not_home": "high",
    "wandering": "high",
    "night_door": "medium",
    "long_bathroom": "high",
    "missed_checkin": "medium",
    "device_offline": "medium",
    "low_battery": "low",
    "device_removed": "medium",
    "tamper": "medium",
    "power_off": "medium",
}

RESOLUTIONS = (
    "false_alarm",
    "resident_fine",
    "visited_at_home",
    "taken_to_hospital",
    "police_involved",
    "device_fault",
)


@dataclass(frozen=True, slots=True)  # one per registered device: 100,000 of them in memory
class Binding:
    """Who a device belongs to: the resident, household and place in the region tree."""

    device_id: str
    device_type: str
    resident_id: str | None
    household_id: str | None
    region_path: str | None
    room: str | None
    active: bool = True
    z2m_name: str | None = None  # friendly name when the device reaches us through zigbee2mqtt


@dataclass(frozen=True)
class Trigger:
    """A reason to raise (or refresh) an alert for a resident."""

    type: str
    severity: str
    ts: datetime
    resident_id: str
    household_id: str
    region_path: str
    source_device: str | None = None
    location: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITY_RANK:
            raise ValueError(f"unknown severity {self.severity!r}")
