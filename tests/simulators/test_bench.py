"""`python -m simulators.bench ingest`, small: its JSON is valid and complete. Speed is not checked here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("workers", [1, 2])
def test_a_small_benchmark_prints_one_complete_json_object(workers, tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "simulators.bench", "ingest", "--messages", "2000", "--devices", "1000",
         "--workers", str(workers), "--sos-every", "200", "--latency-seconds", "3", "--json"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    [line] = run.stdout.strip().splitlines()  # one JSON object, the progress went to stderr
    result = json.loads(line)
    assert {"raw_floor_msgs_per_s", "hub_msgs_per_s", "ratio", "workers", "sos_latency_ms", "rss_mb"} <= set(result)
    assert result["workers"] == workers
    assert result["raw_floor_msgs_per_s"] > 0 and result["hub_msgs_per_s"] > 0
    assert result["ratio"] == pytest.approx(result["hub_msgs_per_s"] / result["raw_floor_msgs_per_s"], abs=1e-3)
    assert result["messages"] == 2000 and sum(result["message_counts"].values()) == 2000
    assert result["committed"] + result["shed_telemetry"] == 2000
    cpu = result["cpu_us_per_msg"]  # where a message's CPU went, per process group
    assert set(cpu) == {"workers", "escalation", "postgres", "mosquitto", "total"}
    # Mosquitto may hand a backlog this small to the hub before the first commit, where counting starts.
    assert cpu["workers"] > 0 and cpu["postgres"] > 0 and min(cpu.values()) >= 0
    assert cpu["total"] == pytest.approx(cpu["workers"] + cpu["escalation"] + cpu["postgres"] + cpu["mosquitto"],
                                         abs=0.5)
    latency = result["sos_latency_ms"]
    assert latency["sent"] > 0 and latency["n"] == latency["sent"]  # every SOS reached a notification
    assert 0 < latency["p50"] <= latency["p99"]
    assert result["rss_mb"]["total"] > 0 and result["rss_mb"]["processes"] == workers + 1  # + escalation


def test_a_backlog_larger_than_the_hub_queue_is_shed_and_counted_not_waited_for(tmp_path):
    # A 100-message telemetry bound against a 3,000-message backlog: the hub sheds telemetry (by design) and
    # the benchmark must end and say so, not wait 15 minutes for rows that will never come.
    env = {**os.environ, "ELDERCARE_INGEST_QUEUE_MAX": "100"}
    run = subprocess.run(
        [sys.executable, "-m", "simulators.bench", "ingest", "--messages", "3000", "--devices", "1000",
         "--sos-every", "300", "--latency-seconds", "2", "--json"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)
    assert result["committed"] + result["shed_telemetry"] == 3000
    assert result["shed_telemetry"] > 0, "nothing was shed: the bound did not bite, the test proves nothing"
    assert "shed" in run.stderr
    assert result["sos_latency_ms"]["n"] == result["sos_latency_ms"]["sent"]  # SOS is never shed
