"""Runs the streaming wrist fall detector per wristband on the IMU batches it sends."""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import UTC, datetime

import numpy as np

from alerts.model import Binding, Trigger
from devices.observation import Observation
from hub.detection.falls import FallDetector, FallModel

# A wristband that stops streaming loses its buffer after this long; memory stays bounded.
IDLE_EVICT_S = 120.0


class WristFalls:
    """One bounded FallDetector per active wristband, least recently used evicted first."""

    def __init__(self, max_devices: int = 20_000) -> None:
        self._detectors: OrderedDict[str, tuple[FallDetector, float]] = OrderedDict()
        self._max = max_devices
        self._model = FallModel.load()  # shared, read-only: one copy however many wristbands
        self._offset_cache: dict[tuple[int, float], np.ndarray] = {}

    def observe(self, obs: Observation, binding: Binding) -> list[Trigger]:
        """Feed an IMU batch; returns a fall trigger per detected fall."""
        if obs.imu is None or binding.resident_id is None:
            return []
        now = time.monotonic()
        entry = self._detectors.pop(obs.device_id, None)
        detector = entry[0] if entry and now - entry[1] < IDLE_EVICT_S else FallDetector(self._model)
        self._detectors[obs.device_id] = (detector, now)
        while len(self._detectors) > self._max:
            self._detectors.popitem(last=False)
        samples = obs.imu.samples
        t = obs.ts.timestamp() + self._offsets(len(samples), obs.imu.rate_hz)
        triggers = []
        for fall_t in detector.push(t, samples.astype(np.float64)):
            assert binding.household_id and binding.region_path
            triggers.append(Trigger(
                type="fall", severity="critical", ts=datetime.fromtimestamp(fall_t, UTC),
                resident_id=binding.resident_id, household_id=binding.household_id,
                region_path=binding.region_path, source_device=obs.device_id,
                details={"source": "imu", "device_type": binding.device_type},
            ))
        return triggers

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
        return len(self._detectors)
