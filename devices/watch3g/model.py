"""What a decoded watch frame holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from devices.watch3g.alarms import StatusWord


@dataclass(frozen=True, slots=True)
class Location:
    """A GNSS fix; frames without a valid fix carry no Location at all."""

    lat: float
    lon: float
    accuracy_m: float | None = None
    speed_kmh: float | None = None
    course_deg: float | None = None
    altitude_m: float | None = None
    satellites: int | None = None
    time: datetime | None = None  # device time of the fix, UTC


@dataclass(frozen=True, slots=True)
class Cell:
    """One mobile cell the watch heard."""

    mcc: int | None
    mnc: int | None
    lac: int
    cid: int
    rssi: int | None


@dataclass(frozen=True, slots=True)
class Wifi:
    """One Wi-Fi access point the watch heard (the name is personal data: never log it)."""

    mac: str
    rssi: int | None
    name: str = ""


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame; fields a frame kind does not carry stay None / empty."""

    maker: str
    device_id: str
    kind: str
    raw_content: bytes  # content after the length field, escapes undone
    wire: bytes = b""  # the frame exactly as received, for deduplication ids
    index: str | None = None  # the optional 4-hex sequence field of some makers
    length_ok: bool = True
    ts: datetime | None = None
    fix_valid: bool | None = None  # 'A'/'V' of position frames
    location: Location | None = None
    battery: int | None = None
    signal: int | None = None  # GSM signal 0-100
    steps: int | None = None
    tumbles: int | None = None
    status: StatusWord | None = None
    alarms: frozenset[str] = frozenset()
    cells: tuple[Cell, ...] = ()
    wifis: tuple[Wifi, ...] = ()
    heart_rate: int | None = None
    systolic: int | None = None
    diastolic: int | None = None
    spo2: int | None = None
    body_temp_c: float | None = None
    warnings: tuple[str, ...] = field(default=())
    # Set by the gateway, not the parser: why this frame is not believed (second_connection, impossible_speed).
    suspect: frozenset[str] = frozenset()

    @property
    def is_alarm_frame(self) -> bool:
        """AL, AL_LTE, ALCUSTOMER1...: frames the watch resends until acknowledged."""
        return self.kind.startswith("AL") and self.status is not None
