"""The normalised facts every codec produces, whatever the device spoke."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

# Kinds that must reach an alert even under overload; acknowledged to the broker only after commit.
CRITICAL_KINDS = frozenset({"sos", "fall", "alarm", "checkin"})


@dataclass(frozen=True, slots=True)
class Location:
    """A position fix; `acc_m` is the radius of uncertainty, `src` gnss, cell or wifi."""

    lat: float
    lon: float
    acc_m: float | None = None
    src: str = "gnss"

    def as_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {"lat": self.lat, "lon": self.lon, "acc_m": self.acc_m, "src": self.src}


@dataclass(frozen=True, slots=True)
class ImuBatch:
    """Wrist accelerometer samples in g, shape (N, 3), at `rate_hz` starting at the observation ts."""

    rate_hz: float
    samples: np.ndarray


@dataclass(frozen=True, slots=True)
class Observation:
    """One fact from one device at one time; `critical` ones are never shed."""

    device_id: str
    kind: str
    ts: datetime
    msg_id: str
    critical: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    readings: tuple[tuple[str, float], ...] = ()
    status: dict[str, Any] = field(default_factory=dict)
    location: Location | None = None
    imu: ImuBatch | None = None
