"""The storage benchmark runs end to end at a tiny size and reports both editions side by side."""

from __future__ import annotations

import argparse

import pytest

from hub.embedded.timescale_build import default_tree, ready
from simulators import bench_storage


def test_tiny_run_reports_both_editions():
    if not ready(default_tree()):
        pytest.skip("no cached Community build of TimescaleDB (the storage tests build it: tests/hub/storage)")
    args = argparse.Namespace(days=5, households=3, editions="timescale,apache", compress_after_days=2,
                              repeats=3, seed=1, source=None)
    out = bench_storage.storage(args)
    community, apache = out["editions"]["timescale"], out["editions"]["apache"]
    assert community["license"] == "timescale" and apache["license"] == "apache"
    assert community["rows_written"] == apache["rows_written"] > 0
    # The two oldest days of both tables are always past 2 days; an aggregate chunk (10 days) may be too.
    assert community["chunks_compressed"] >= 4
    ratio = community["compression_ratio_of_compressed_chunks"]
    assert ratio["readings"] > 1 and ratio["device_events"] > 1
    assert set(community["queries_aggregate"]) == {"activity_hourly_30d", "vitals_hourly_7d"}
    # Same data, same answers: the aggregate returns as many buckets as the raw query.
    assert (community["queries_aggregate"]["activity_hourly_30d"]["rows_last"]
            == community["queries_raw"]["activity_hourly_30d"]["rows_last"])
    assert "queries_aggregate" not in apache
