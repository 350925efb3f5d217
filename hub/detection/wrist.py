"""Runs the streaming wrist fall detector per wristband on the IMU batches it sends."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from alerts.model import Binding, Trigger
from devices.observation import Observation
from hub.detection.falls import FallDetector, FallModel
from hub.shutdown import raise_if_cancelled

log = logging.getLogger(__name__)

# A wristband that stops streaming loses its buffer after this long; memory stays bounded.
IDLE_EVICT_S = 120.0
PAUSE_S = 5.0
"""Hub-clock seconds without an IMU batch after which a band's stream counts as paused: the impacts it
still owes a verdict are judged then (falls.TAIL_S rule), so a band that goes silent after a fall still
raises the alarm. Bands send about one batch a second; five seconds leaves room for a late message."""
SWEEP_S = 1.0
"""How often paused streams are looked for."""


@dataclass
class _Band:
    detector: FallDetector
    last_seen: float
    binding: Binding
    device_type: str


class WristFalls:
    """One bounded FallDetector per active wristband, least recently used evicted first."""

    def __init__(self, max_devices: int = 20_000, pause_s: float = PAUSE_S) -> None:
        self._bands: OrderedDict[str, _Band] = OrderedDict()
        self._streaming: OrderedDict[str, None] = OrderedDict()  # bands not yet paused, oldest batch first
        self._max = max_devices
        self._pause_s = pause_s
        self._model = FallModel.load()  # shared, read-only: one copy however many wristbands
        self._offset_cache: dict[tuple[int, float], np.ndarray] = {}

    def observe(self, obs: Observation, binding: Binding) -> list[Trigger]:
        """Feed an IMU batch; returns a fall trigger per detected fall."""
        if obs.imu is None or binding.resident_id is None:
            return []
        now = time.monotonic()
        band = self._bands.pop(obs.device_id, None)
        if band is None or now - band.last_seen >= IDLE_EVICT_S:
            band = _Band(FallDetector(self._model), now, binding, binding.device_type)
        band.last_seen, band.binding = now, binding
        self._bands[obs.device_id] = band
        self._streaming.pop(obs.device_id, None)
        self._streaming[obs.device_id] = None
        while len(self._bands) > self._max:
            gone, _ = self._bands.popitem(last=False)
            self._streaming.pop(gone, None)
        samples = obs.imu.samples
        t = obs.ts.timestamp() + self._offsets(len(samples), obs.imu.rate_hz)
        return self._triggers(obs.device_id, band, band.detector.push(t, samples.astype(np.float64)))

    def sweep(self, now: float | None = None) -> list[Trigger]:
        """Judge the pending impacts of every band whose stream has paused for PAUSE_S."""
        now = time.monotonic() if now is None else now
        out: list[Trigger] = []
        while self._streaming:
            device_id = next(iter(self._streaming))
            band = self._bands.get(device_id)
            if band is not None and now - band.last_seen < self._pause_s:
                break  # the rest sent a batch more recently
            del self._streaming[device_id]
            if band is not None:
                out += self._triggers(device_id, band, band.detector.finish())
        return out

    async def run(self, emit: Callable[[list[Trigger]], None], every_s: float = SWEEP_S) -> None:
        """Look for paused streams every `every_s` and emit what their pending impacts raise."""
        while True:
            raise_if_cancelled()
            await asyncio.sleep(every_s)
            try:
                triggers = self.sweep()
            except Exception:  # a detector bug must not stop the sweeps for other bands
                log.exception("wrist fall sweep failed")
                continue
            if triggers:
                emit(triggers)

    def _triggers(self, device_id: str, band: _Band, falls: list[float]) -> list[Trigger]:
        binding = band.binding
        out = []
        for fall_t in falls:
            assert binding.resident_id and binding.household_id and binding.region_path
            out.append(Trigger(
                type="fall", severity="critical", ts=datetime.fromtimestamp(fall_t, UTC),
                resident_id=binding.resident_id, household_id=binding.household_id,
                region_path=binding.region_path, source_device=device_id,
                details={"source": "imu", "device_type": band.device_type},
            ))
        return out

    def _offsets(self, n: int, rate_hz: float) -> np.ndarray:
        """Sample times relative to the batch start; a fleet uses a handful of (length, rate) pairs."""
        key = (n, rate_hz)
        offsets = self._offset_cache.get(key)
        if offsets is None:
            if len(self._offset_cache) >= 64:  # bounded whatever the devices send
                self._offset_cache.clear()
            offsets = self._offset_cache[key] = np.arange(n, dtype=np.float64) / rate_hz
            offsets.flags.writeable = False
        return offsets

    def __len__(self) -> int:
        return len(self._bands)

