"""PostgreSQL stops mid-stream and comes back on the same data directory: no critical message is lost."""

from __future__ import annotations

import random
import threading
import time

import psycopg

from simulators import bench
from tests.faults.conftest import report, restart, seed_fleet, sos_summary, wait_for

MESSAGES = 4_000
SOS_EVERY = 100  # 40 presses from 40 residents
DEVICES = 250  # 50 residents
RATE = 800  # messages per second: 5 s of stream
DOWN_S = 3.0


def test_no_critical_message_is_lost_when_postgres_restarts(private_pg, broker, hub_process):
    seed_fleet(private_pg.url, DEVICES)
    t0 = time.time() - 30
    work = bench.build(MESSAGES, DEVICES, {"imu": 0.2, "heartbeat": 0.5, "sensor": 0.3}, SOS_EVERY,
                       random.Random(5), t0)
    hub = hub_process(private_pg.url, broker)
    hub.start()
    hub.wait_ready()

    publisher = broker.publisher()
    publishing = threading.Thread(target=publisher.publish, args=(work.messages, RATE), daemon=True)
    try:
        publishing.start()
        wait_for(lambda: sos_summary(private_pg.url, t0 - 1)["sos_alerts"] >= 5, 20, "first SOS alerts")
        private_pg.stop()  # SIGINT: fast shutdown, open transactions roll back
        stopped = time.monotonic()
        down = wait_for(lambda: (h := hub.health()) and not h["database"]["ok"] and h, 15,
                        "/health reporting the database outage")
        detected_s = time.monotonic() - stopped
        time.sleep(max(0.0, DOWN_S - (time.monotonic() - stopped)))
        restart(private_pg)
        started = time.monotonic()
        down_s = started - stopped
        up = wait_for(lambda: (h := hub.health()) and h["database"]["ok"] and h, 40,
                      "/health reporting the database back")
        recovered_s = time.monotonic() - started
        publishing.join(60)
        assert not publishing.is_alive(), "publisher did not finish"
    finally:
        publisher.close()

    critical_sent = work.counts["sos"] + work.counts["sensor"]

    def stored() -> dict[str, int] | None:
        with psycopg.connect(private_pg.url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM device_events WHERE ts >= to_timestamp(%s)", (t0 - 1,)
                               ).fetchone()
        summary = sos_summary(private_pg.url, t0 - 1)
        return {**summary, "critical": int(row[0])} if row and row[0] >= critical_sent \
            and summary["sos_alerts"] >= work.counts["sos"] else None

    caught_up = time.monotonic()
    final = wait_for(stored, 40, "every critical message stored after the restart", every=0.3)
    after = hub.health() or {}
    figures = {
        "messages_sent": len(work.messages), "critical_sent": critical_sent, "sos_sent": work.counts["sos"],
        "critical_stored": final["critical"], "sos_alerts_found": final["sos_alerts"],
        "duplicates": final["triggers"] - work.counts["sos"],
        "database_down_s": round(down_s, 2), "outage_seen_by_health_after_s": round(detected_s, 2),
        "health_during_outage": {"ok": down["database"]["ok"], "error": down["database"]["error"]},
        "health_back_after_restart_s": round(recovered_s, 2),
        "caught_up_after_health_back_s": round(time.monotonic() - caught_up, 2),
        "health_after": {k: after["database"][k] for k in ("ok", "outages", "last_outage_s")},
        "telemetry_shed": after.get("ingest", {}).get("counters", {}).get("shed_telemetry", 0),
    }
    report("PostgreSQL restarted mid-stream", figures)
    assert down["database"]["error"], "the outage has no reason in /health"
    assert up["database"]["outages"] >= 1 and up["database"]["last_outage_s"] is not None
    assert final["critical"] == critical_sent and final["sos_alerts"] == work.counts["sos"]
    assert figures["duplicates"] == 0
