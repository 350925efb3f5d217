"""Full garbage-collection passes: kept rare, with each pause counted in /health."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from hub.health import Health

FULL_GC_THRESHOLDS = (700, 10, 1000)
"""Default young thresholds; a full pass after 1,000 middle ones, not 10: about 4 min apart at full load."""


def settle(health: Health) -> Callable[[], None]:
    """Freeze what start-up loaded, make full passes rare and count their pauses; returns an undo."""
    # Everything loaded so far (bindings, monitors, modules) lives as long as the process: keep it out of
    # the cyclic collector, whose full passes over it otherwise stall ingestion for tens of milliseconds.
    gc.collect()
    gc.freeze()
    # Per-device state made after this point (a first message from each of 100,000 devices) is long-lived
    # too. With the default thresholds a full pass ran every 10th middle pass: 17 full passes of 80-220 ms
    # in one 100,000-device benchmark, which were the whole of its intake tail.
    before = gc.get_threshold()
    gc.set_threshold(*FULL_GC_THRESHOLDS)
    started = 0.0

    def watch(phase: str, info: dict[str, Any]) -> None:
        nonlocal started
        if info["generation"] != 2:
            return
        if phase == "start":
            started = time.perf_counter()
            return
        health.count("gc_full_passes")
        health.gauges["gc_full_ms_last"] = round((time.perf_counter() - started) * 1000, 1)

    gc.callbacks.append(watch)

    def undo() -> None:
        gc.callbacks.remove(watch)
        gc.set_threshold(*before)

    return undo
