"""Logs are one JSON object per line and never carry personal data, through a real SOS flow."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest

from hub.embedded import free_port
from hub.logs import JsonFormatter
from simulators.native import message

pytestmark = pytest.mark.anyio

NAME, PHONE, ADDRESS, NOTES = "王秀英", "13912345678", "幸福路88号3栋502室", "糖尿病 insulin-dose-secret"
CONTACT, CONTACT_PHONE = "李建国", "13687654321"
PERSONAL = (NAME, PHONE, ADDRESS, NOTES, "insulin-dose-secret", CONTACT, CONTACT_PHONE)


def _leaks(text: str) -> list[str]:
    return [p for p in PERSONAL if p in text]


async def _household_and_resident(base: str, headers: dict[str, str], rid: str) -> None:
    async with httpx.AsyncClient(base_url=base, headers=headers) as http:
        res = await http.post("/api/households", json={"id": "H" + rid, "region_path": "sz/futian/lianhua",
                                                       "address": ADDRESS, "lat": 22.55, "lon": 114.05})
        assert res.status_code == 201, res.text
        res = await http.post("/api/residents", json={
            "id": rid, "household_id": "H" + rid, "name": NAME, "birth_year": 1938, "phone": PHONE,
            "medical_notes": NOTES, "risk_flags": ["living_alone"],
            "contacts": [{"name": CONTACT, "relation": "son", "phone": CONTACT_PHONE}]})
        assert res.status_code == 201, res.text
        # A conflicting create and a bad patch: error paths log too.
        await http.post("/api/residents", json={"id": rid, "household_id": "H" + rid, "name": NAME + "x"})
        await http.patch(f"/api/residents/{rid}", json={"medical_notes": NOTES, "unknown": PHONE})


async def _press_sos(world, devices, rid: str, device_id: str) -> None:  # type: ignore[no-untyped-def]
    password = await world.device(device_id, "wristband", rid)
    client = await devices.connect(device_id, password)
    try:
        await client.publish(world.topic("wristband", device_id, "sos"),
                             message({"location": {"lat": 22.5431, "lon": 114.0579, "acc_m": 10}}), qos=1)
        # A malformed message that quotes personal data must not reach the log either (it is dead-lettered).
        await client.publish(world.topic("wristband", device_id, "heartbeat"),
                             f'{{"v":1,"note":"{NAME} {PHONE}"'.encode(), qos=1)
    finally:
        await client.__aexit__(None, None, None)


async def test_no_personal_data_in_any_log_record(running_hub, world, devices, login, settings, caplog):
    caplog.set_level(logging.DEBUG)
    await world.region_tree()
    await world.user("adm", "admin")
    base = f"http://127.0.0.1:{settings.api_port}"
    headers = await login(base, "adm", "adm-pw")
    await _household_and_resident(base, headers, "RP1")
    await _press_sos(world, devices, "RP1", "WBP1")
    for _ in range(200):
        if running_hub.health.counters.get("escalation_steps", 0) >= 1:
            break
        await asyncio.sleep(0.05)
    assert running_hub.health.counters.get("escalation_steps", 0) >= 1, "the SOS was not escalated"
    async with httpx.AsyncClient(base_url=base, headers=headers) as http:
        alerts = (await http.get("/api/alerts")).json()["items"]
        await http.get(f"/api/alerts/{alerts[0]['id']}/timeline")
        await http.get("/api/residents/RP1")
        await http.get("/metrics")

    formatter = JsonFormatter()
    assert caplog.records, "nothing was logged"
    leaks = []
    for record in caplog.records:
        line = formatter.format(record)
        assert "\n" not in line
        parsed = json.loads(line)
        assert {"ts", "level", "logger", "msg"} <= parsed.keys()
        if found := _leaks(line):
            leaks.append(f"{record.name}: {found}: {line[:300]}")
    assert any("notify alert_id=" in r.getMessage() for r in caplog.records), "the console channel did not log"
    assert not leaks, "\n".join(leaks)


async def test_every_stderr_line_of_hub_run_is_json(world, devices, settings, services, tmp_path: Path, db_url):
    rid = await world.resident("RJ1")
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await conn.execute("UPDATE residents SET name = %s, phone = %s, medical_notes = %s WHERE id = %s",
                           (NAME, PHONE, NOTES, rid))
        await conn.execute("UPDATE households SET address = %s", (ADDRESS,))
        await conn.execute("UPDATE contacts SET name = %s, phone = %s", (CONTACT, CONTACT_PHONE))
    port = free_port()
    env = {**os.environ, "ELDERCARE_DB_URL": db_url, "ELDERCARE_MQTT_URL": services.mqtt_url(),
           "ELDERCARE_MQTT_TOPIC_ROOT": settings.mqtt_topic_root, "ELDERCARE_MQTT_CLIENT_ID": settings.mqtt_client_id,
           "ELDERCARE_API_PORT": str(port), "ELDERCARE_WATCH_GATEWAY_PORT": "0", "ELDERCARE_LOG_LEVEL": "DEBUG",
           "ELDERCARE_DATA_DIR": str(tmp_path / "var"), "ELDERCARE_ZIGBEE2MQTT_BASE_TOPIC": "",
           "ELDERCARE_MQTT_PASSWD_FILE": str(services.broker.passwd_file)}
    err_file = (tmp_path / "stderr.log").open("wb")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "hub", "run", env=env,
                                                stdout=subprocess.DEVNULL, stderr=err_file)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(300):
                assert proc.returncode is None, (tmp_path / "stderr.log").read_text()[-2000:]
                try:
                    if (await http.get("/health/ready")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            await _press_sos(world, devices, rid, "WBJ1")
            async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
                for _ in range(100):
                    row = await (await conn.execute(
                        "SELECT count(*) FROM alert_events WHERE kind = 'notification'")).fetchone()
                    if row and row[0]:
                        break
                    await asyncio.sleep(0.1)
            await http.get("/metrics")
            await http.get("/api/residents/RJ1")  # 401: a refused request logs nothing personal either
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
        err_file.close()
    lines = [line for line in (tmp_path / "stderr.log").read_text().splitlines() if line.strip()]
    assert len(lines) >= 3
    bad = []
    for line in lines:
        try:
            parsed = json.loads(line)
            assert {"ts", "level", "logger", "msg"} <= parsed.keys()
        except (ValueError, AssertionError):
            bad.append(line)
    assert not bad, f"{len(bad)} non-JSON stderr lines, e.g. {bad[:3]}"
    assert any("notify alert_id=" in json.loads(line)["msg"] for line in lines), "no notification was logged"
    leaks = [line for line in lines if _leaks(line)]
    assert not leaks, leaks[:3]
