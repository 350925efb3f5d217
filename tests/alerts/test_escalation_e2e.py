"""End to end: an SOS over MQTT climbs the ladder to a 120 dispatch on a running hub, all on the timeline."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from simulators.native import message
from tests.alerts.conftest import add_user, channels_doc, write_yaml

pytestmark = pytest.mark.anyio

# The default SOS ladder with seconds instead of minutes, so the test runs the whole climb quickly.
FAST_SOS = {"policies": [{
    "name": "sos_fast",
    "match": {"types": ["sos"]},
    "steps": [
        {"name": "first_notice", "recipients": ["family", "community_worker"], "timeout_s": 1},
        {"name": "duty_officer", "recipients": ["duty_officer", "call_centre"], "timeout_s": 1},
        {"name": "dispatch_120", "recipients": ["emergency_120"], "timeout_s": 600},
    ],
    "reminder": {"every_s": 600, "recipients": ["duty_officer"]},
    "emergency": "emergency_120",
}]}


@pytest.fixture
def settings(settings, hooks, tmp_path):
    """The test settings plus a channels file pointing at the loopback receiver and the fast policy."""
    return settings.model_copy(update={
        "channels_file": write_yaml(tmp_path / "channels.yaml", channels_doc(hooks)),
        "policy_file": write_yaml(tmp_path / "policies.yaml", FAST_SOS),
    })


async def _press_sos(world, devices, rid: str, device_id: str) -> float:
    password = await world.device(device_id, "wristband", rid)
    client = await devices.connect(device_id, password)
    try:
        sent = time.monotonic()
        await client.publish(world.topic("wristband", device_id, "sos"),
                             message({"location": {"lat": 22.5431, "lon": 114.0579, "acc_m": 12}}), qos=1)
    finally:
        await client.__aexit__(None, None, None)
    return sent


async def _until(predicate, within: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < within, f"{what} did not happen within {within} s"
        await asyncio.sleep(0.02)
    return time.monotonic()


async def test_unacknowledged_sos_reaches_120_with_every_step_on_the_timeline(
        running_hub, world, devices, login, settings, hooks, db_url):
    await world.resident("R1", contacts=1)
    await world.user("op", "operator")
    worker = await add_user(db_url, "worker", "community_worker", "sz/futian/lianhua")
    duty = await add_user(db_url, "duty", "operator", "sz/futian")
    base = f"http://127.0.0.1:{settings.api_port}"
    headers = await login(base, "op", "op-pw")

    sent = await _press_sos(world, devices, "R1", "WB1")
    family_at = await _until(lambda: hooks.on("/family"), 5, "family notification")
    assert family_at - sent < 1.5
    await _until(lambda: hooks.on("/emergency"), 8, "120 dispatch")
    [call] = hooks.on("/emergency")
    assert call["service"] == "120" and call["dispatch"]["location"]["kind"] == "live"
    assert {b["recipient"]["id"] for b in hooks.on("/staff")} == {f"user-{worker}", f"user-{duty}", "call-centre"}

    async with httpx.AsyncClient(base_url=base, headers=headers) as http:
        alert_id = call["alert_id"]
        [record] = (await http.get(f"/api/alerts/{alert_id}/dispatches")).json()
        assert record["delivered"] is True and record["text_zh"] == call["read_out_text"]
        res = await http.post(f"/api/alerts/{alert_id}/dispatches/{record['id']}/outcome",
                              json={"outcome": "ambulance_sent", "reference": "120-0815-77", "note": "ETA 9 min"})
        assert res.status_code == 200 and res.json()["outcome"] == "ambulance_sent"
        entries = (await http.get(f"/api/alerts/{alert_id}/timeline")).json()
        sla = (await http.get("/api/sla", params={"community": "sz/futian/lianhua"})).json()
        policies = (await http.get("/api/policies")).json()

    print("\nTIMELINE alert", alert_id)
    for e in entries:
        print(e["ts"], e["kind"], e["actor"], json.dumps(e["details"], ensure_ascii=False))
    kinds = [e["kind"] for e in entries]
    assert kinds[:2] == ["created", "policy"]
    assert kinds.count("escalated") == 2 and kinds.count("dispatch_record") == 1
    assert kinds[-1] == "dispatch_outcome"
    delivered = [(e["details"]["step_name"], e["details"]["recipient_kind"], e["details"]["channel"])
                 for e in entries if e["kind"] == "notification" and e["details"]["result"] == "ok"]
    assert delivered[:2] == [("first_notice", "family", "family-app"), ("first_notice", "community_worker",
                                                                         "staff-app")]
    assert ("dispatch_120", "emergency_120", "gateway") in delivered
    [community] = sla["communities"]
    assert community["dispatched"] == 1 and community["first_notification_p50_s"] < 1.5
    assert policies["policies"][0]["name"] == "sos_fast" and policies["channels"]["gateway"] == "emergency"


async def test_acknowledging_stops_the_ladder_and_an_operator_can_still_confirm_an_emergency(
        running_hub, world, devices, login, settings, hooks, db_url):
    await world.resident("R1", contacts=1)
    await world.user("op", "operator")
    await add_user(db_url, "duty", "operator", "sz/futian/lianhua")
    base = f"http://127.0.0.1:{settings.api_port}"
    headers = await login(base, "op", "op-pw")
    await _press_sos(world, devices, "R1", "WB2")
    await _until(lambda: hooks.on("/family"), 5, "family notification")
    alert_id = hooks.on("/family")[0]["alert_id"]
    async with httpx.AsyncClient(base_url=base, headers=headers) as http:
        ack = await http.post(f"/api/alerts/{alert_id}/ack", json={"via": "phone", "note": "daughter called"})
        assert ack.status_code == 200
        await asyncio.sleep(2.5)  # past both 1 s timeouts
        assert hooks.on("/staff") == [] and hooks.on("/emergency") == []

        res = await http.post(f"/api/alerts/{alert_id}/confirm-emergency", json={"note": "resident unresponsive"})
        assert res.status_code == 202
        await _until(lambda: hooks.on("/emergency"), 3, "confirmed dispatch")
        again = await http.post(f"/api/alerts/{alert_id}/confirm-emergency", json={})
        kinds = [e["kind"] for e in (await http.get(f"/api/alerts/{alert_id}/timeline")).json()]
    assert again.status_code == 409
    assert hooks.on("/emergency")[0]["dispatch"]["cause"] == "confirmed"
    assert kinds.index("acknowledged") < kinds.index("emergency_confirmed") < kinds.index("dispatch_record")
