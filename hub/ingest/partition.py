"""Several ingestion workers: who owns a resident's detection state, and how other workers hand it over.

Workers share the ingest stream through an MQTT shared subscription, so consecutive messages of one
device may reach different workers. Storing them and the alerts single messages raise is stateless
and happens wherever a message lands. Detection that needs history (wrist falls, home activity,
geofences) runs only in the resident's owner, chosen by a stable hash; another worker forwards the
raw message to the owner's own topic, where it is decoded again and fed to the detectors only.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass

from alerts.model import Binding
from devices.errors import DecodeError

INTERNAL_ROOT = "eldercare-internal/detect"
SHARE_GROUP = "eldercare-hub"
# Observation kinds the stateful detectors read; everything else needs no owner.
STATEFUL_KINDS = frozenset({"imu", "location", "door", "motion", "bed", "radar", "checkin", "sos", "fall"})


@dataclass(frozen=True)
class Partition:
    """Worker `index` of `workers`."""

    workers: int = 1
    index: int = 0

    def owner(self, binding: Binding) -> int:
        """The worker that keeps this resident's (or unbound device's) detector state."""
        key = binding.resident_id or binding.device_id
        return zlib.crc32(key.encode()) % self.workers

    def mine(self, binding: Binding) -> bool:
        """True when this worker runs the detectors for the binding."""
        return self.workers == 1 or self.owner(binding) == self.index

    def owns_resident(self, resident_id: str) -> bool:
        """True when this worker keeps the resident's state."""
        return self.workers == 1 or zlib.crc32(resident_id.encode()) % self.workers == self.index

    @property
    def inbox(self) -> str:
        """The topic other workers forward this worker's detection input to."""
        return f"{INTERNAL_ROOT}/{self.index}"

    def subscriptions(self, filters: list[str]) -> list[str]:
        """Ingest filters, shared among workers when there are several, plus this worker's inbox."""
        if self.workers == 1:
            return filters
        return [f"$share/{SHARE_GROUP}/{f}" for f in filters] + [self.inbox]


def wrap(topic: str, payload: bytes, received: float) -> bytes:
    """The forwarded form of a message: its original topic, payload and receipt time."""
    return json.dumps({"t": topic, "p": base64.b64encode(payload).decode(), "r": received}).encode()


def unwrap(raw: bytes) -> tuple[str, bytes, float]:
    """Undo `wrap`."""
    try:
        body = json.loads(raw)
        return str(body["t"]), base64.b64decode(body["p"]), float(body["r"])
    except (ValueError, KeyError, TypeError) as err:
        raise DecodeError("malformed_json", "forwarded detection message is malformed") from err
