"""kill -9 the hub mid-stream: after a restart every SOS alert exists exactly once and escalation carries on."""

from __future__ import annotations

import random
import threading
import time

import psycopg

from simulators import bench
from tests.faults.conftest import report, seed_fleet, sos_summary, wait_for

MESSAGES = 10_000
SOS_EVERY = 200  # 50 presses, each from a different resident
DEVICES = 500  # 100 residents: a wristband and four home sensors each
RATE = 1_200  # messages per second: about 8 s of stream, so the kill lands in the middle of it


def test_sos_survives_kill_9_of_the_hub(db_url, broker, hub_process):
    seed_fleet(db_url, DEVICES)
    t0 = time.time() - 30
    work = bench.build(MESSAGES, DEVICES, {"imu": 0.2, "heartbeat": 0.5, "sensor": 0.3}, SOS_EVERY,
                       random.Random(9), t0)
    sos_sent = work.counts["sos"]
    assert sos_sent == MESSAGES // SOS_EVERY

    hub = hub_process(db_url, broker)
    hub.start()
    hub.wait_ready()  # the hub's persistent session exists before the first message

    publisher = broker.publisher()
    publishing = threading.Thread(target=publisher.publish, args=(work.messages, RATE), daemon=True)
    try:
        publishing.start()
        # Kill once some alerts exist (they must keep escalating) while the stream is still flowing.
        wait_for(lambda: sos_summary(db_url, t0 - 1)["sos_alerts"] >= 10, 20, "first SOS alerts")
        hub.kill()
        killed = time.time()
        before = sos_summary(db_url, t0 - 1)
        with psycopg.connect(db_url, autocommit=True) as conn:
            pre_kill = [r[0] for r in conn.execute(
                "SELECT id FROM alerts WHERE type = 'sos' AND created_at < to_timestamp(%s)", (killed,))]
        time.sleep(1.0)  # down for a second while devices keep publishing
        hub.start()
        restarted = hub.starts[-1]
        hub.wait_ready()
        publishing.join(60)
        assert not publishing.is_alive(), "publisher did not finish"
    finally:
        publisher.close()

    found = wait_for(lambda: (s := sos_summary(db_url, t0 - 1))["sos_alerts"] >= sos_sent and s, 30,
                     "every SOS alert after the restart")
    with psycopg.connect(db_url, autocommit=True) as conn:
        last_alert = conn.execute("SELECT extract(epoch FROM max(created_at)) FROM alerts WHERE type = 'sos'"
                                  ).fetchone()
        dup_residents = conn.execute(
            "SELECT count(*) FROM (SELECT resident_id FROM alerts WHERE type = 'sos'"
            " GROUP BY resident_id HAVING count(*) > 1) d").fetchone()
        stored = conn.execute("SELECT count(*) FROM device_events WHERE ts >= to_timestamp(%s)", (t0 - 1,)
                              ).fetchone()

        def carried_on() -> bool:
            # Every alert raised before the kill gets a notification from the restarted hub's engine.
            rows = conn.execute(
                "SELECT count(DISTINCT alert_id) FROM alert_events WHERE kind = 'notification'"
                " AND alert_id = ANY(%s) AND ts > to_timestamp(%s)", (pre_kill, restarted)).fetchone()
            return rows is not None and rows[0] == len(pre_kill)

        wait_for(carried_on, 40, "escalation of the alerts raised before the kill")
        escalated_at = time.time()
        steps = conn.execute(
            "SELECT details->>'step_name', count(*) FROM alert_events WHERE kind = 'notification'"
            " AND alert_id = ANY(%s) GROUP BY 1 ORDER BY 1", (pre_kill,)).fetchall()
    health = hub.health() or {}
    figures = {
        "messages_sent": len(work.messages), "sos_sent": sos_sent,
        "sos_stored_before_kill": before["sos_events"], "alerts_before_kill": len(pre_kill),
        "sos_alerts_found": found["sos_alerts"], "sos_events_stored": found["sos_events"],
        "duplicates": found["triggers"] - sos_sent + (dup_residents[0] if dup_residents else 0),
        "critical_events_stored": stored[0] if stored else None,
        "critical_sent": work.counts["sos"] + work.counts["sensor"],
        "redeliveries_ignored_after_restart": health.get("ingest", {}).get("counters", {}).get(
            "duplicates_ignored", 0),
        "restart_to_last_sos_alert_s": round(float(last_alert[0]) - restarted, 2) if last_alert else None,
        "restart_to_escalation_of_pre_kill_alerts_s": round(escalated_at - restarted, 2),
        "notifications_of_pre_kill_alerts_by_step": dict(steps),
    }
    report("hub killed (kill -9 mid-stream, restarted after 1 s)", figures)
    assert found == {"sos_events": sos_sent, "sos_alerts": sos_sent, "residents_alerted": sos_sent,
                     "triggers": sos_sent}, figures
    assert figures["duplicates"] == 0
    assert figures["critical_events_stored"] == figures["critical_sent"], "a critical message was lost"
