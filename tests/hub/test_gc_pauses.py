"""Full garbage-collection passes are made rare while the hub runs, and each one is counted."""

from __future__ import annotations

import gc

from hub.gc_pauses import FULL_GC_THRESHOLDS, settle
from hub.health import Health


def test_settle_makes_full_passes_rare_counts_them_and_undoes():
    before = gc.get_threshold()
    health = Health()
    undo = settle(health)
    try:
        assert gc.get_threshold() == FULL_GC_THRESHOLDS
        assert gc.get_freeze_count() > 0  # start-up objects are out of the collector's way
        gc.collect(1)  # a middle pass is not a full one
        assert "gc_full_passes" not in health.counters
        gc.collect()
        gc.collect()
        assert health.counters["gc_full_passes"] == 2
        assert health.gauges["gc_full_ms_last"] >= 0
    finally:
        undo()
        gc.unfreeze()
    assert gc.get_threshold() == before
    gc.collect()
    assert health.counters["gc_full_passes"] == 2  # no longer watched
