"""Done-when of issue 19, end to end over MQTT: the family contact's SMS link acknowledges without a login,
the ladder stops before the duty officer, the timeline names the contact and the channel, and the console's
live feed receives the change pushed."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx
import pytest

from tests.alerts.channels.conftest import Receiver
from tests.alerts.conftest import add_user, fast, write_yaml
from tests.alerts.test_escalation_e2e import _press_sos, _until

pytestmark = pytest.mark.anyio

BASE = "https://care.example.org"
FIRST_STEP_S = 4
POLICY = {"policies": [{
    "name": "sos_links",
    "match": {"types": ["sos"]},
    "steps": [
        {"name": "family", "recipients": ["family"], "timeout_s": FIRST_STEP_S},
        {"name": "duty_officer", "recipients": ["duty_officer"], "timeout_s": 600},
    ],
}]}


@pytest.fixture
def gateway() -> Any:
    """A loopback SMS gateway that records what it was asked to send."""
    server = Receiver()
    server.start()
    yield server
    server.close()


@pytest.fixture
def settings(settings: Any, gateway: Receiver, hooks: Any, tmp_path: Any) -> Any:
    """Family by SMS through the loopback gateway, staff by webhook; links on the public address."""
    channels = {
        "channels": [fast({"type": "sms", "name": "sms-gw", "url": gateway.url("/sms")}),
                     fast({"type": "webhook", "name": "staff-app", "url": hooks.url("/staff")})],
        "routes": {"family": ["sms-gw"], "duty_officer": ["staff-app"], "community_worker": ["staff-app"],
                   "operator": ["staff-app"], "call_centre": ["staff-app"]},
    }
    return settings.model_copy(update={
        "channels_file": write_yaml(tmp_path / "channels.yaml", channels),
        "policy_file": write_yaml(tmp_path / "policies.yaml", POLICY),
        "public_base_url": BASE,
    })


async def _watch_feed(http: httpx.AsyncClient, token: str, events: list[dict[str, Any]], ready: asyncio.Event,
                      acked: asyncio.Event) -> None:
    async with http.stream("GET", "/api/feed", params={"access_token": token}) as res:
        assert res.status_code == 200
        async for line in res.aiter_lines():
            if line.startswith(": feed"):
                ready.set()
            elif line.startswith("data: "):
                event = json.loads(line[6:])
                event["received"] = time.monotonic()
                events.append(event)
                if event["payload"].get("change") == "acknowledged":
                    acked.set()


async def test_an_sms_link_acknowledges_stops_the_ladder_and_is_pushed_to_the_console(
        running_hub: Any, world: Any, devices: Any, login: Any, settings: Any, gateway: Receiver, hooks: Any,
        db_url: str) -> None:
    await world.resident("R1", contacts=1)
    await world.user("op", "operator")
    await add_user(db_url, "duty", "operator", "sz/futian")
    base = f"http://127.0.0.1:{settings.api_port}"
    headers = await login(base, "op", "op-pw")
    events: list[dict[str, Any]] = []
    ready, acked = asyncio.Event(), asyncio.Event()
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        console = asyncio.create_task(_watch_feed(http, headers["Authorization"][7:], events, ready, acked))
        try:
            await asyncio.wait_for(ready.wait(), 10)
            pressed = time.monotonic()
            await _press_sos(world, devices, "R1", "WB1")
            await _until(lambda: gateway.requests, 10, "the family SMS")
            [sms] = [r.json() for r in gateway.requests]
            assert sms["phone"] == "13800000001"
            text = sms["text"]
            links = dict(re.findall(r"(收到 / Seen|我去处理 / On my way|详情 / Details): (\S+)", text))
            assert set(links) == {"收到 / Seen", "我去处理 / On my way", "详情 / Details"}, text
            seen = links["收到 / Seen"].removeprefix(BASE)

            # The contact opens the link: no login. The page's script posts its form at once (action.js).
            page = await http.get(seen)
            assert page.status_code == 200 and "Test Resident" in page.text and "1 Test Road" in page.text
            form = re.search(r'<form method="post" id="act" data-auto="1"><input type="hidden" name="action"'
                             r' value="(\w+)">', page.text)
            assert form is not None and form.group(1) == "seen"
            done = await http.post(seen, data={"action": form.group(1)})
            answered = time.monotonic()
            assert done.status_code == 200 and 'data-result="done"' in done.text
            # The console's live feed gets it pushed (no stream polls the database).
            await asyncio.wait_for(acked.wait(), 10)
            [ack] = [e for e in events if e["payload"].get("change") == "acknowledged"]
            print(f"\nfeed push: acknowledged event {ack['received'] - answered:.3f} s after the link was answered")
            assert ack["payload"]["by"] == "Contact 1" and ack["payload"]["via"] == "sms-link"

            # The ladder stops: past the family step's timeout (with margin), no duty officer is told.
            await asyncio.sleep(max(0.0, pressed + FIRST_STEP_S + 2.5 - time.monotonic()))
            assert hooks.on("/staff") == []
            alert_id = ack["payload"]["alert_id"]
            entries = (await http.get(f"/api/alerts/{alert_id}/timeline", headers=headers)).json()
        finally:
            console.cancel()
            await asyncio.gather(console, return_exceptions=True)
    kinds = [e["kind"] for e in entries]
    assert "escalated" not in kinds and "ladder_stopped" not in kinds
    [entry] = [e for e in entries if e["kind"] == "acknowledged"]
    assert entry["actor"] == "Contact 1"
    assert entry["details"]["summary"] == "acknowledged by Contact 1 via sms-link"
    assert [(e["details"]["recipient_kind"], e["details"]["channel"]) for e in entries
            if e["kind"] == "notification"] == [("family", "sms-gw")]
