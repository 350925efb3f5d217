"""Public action links and SMS replies: no login, one alert and recipient, once per action, refusals recorded."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
from psycopg.types.json import Jsonb
from pydantic import SecretStr

from alerts.actions import ActionLinks, link_secret
from hub.settings import Settings
from tests.hub.api.conftest import Scene

pytestmark = pytest.mark.anyio

BASE = "https://care.example.org"
INBOUND = "inbound-secret-for-tests"
CONTACT = "contact-IN-R-1"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test settings with a public address (so links are made) and the SMS reply webhook on."""
    return settings.model_copy(update={"public_base_url": BASE, "sms_inbound_secret": SecretStr(INBOUND)})


def _local(url: str, scene: Scene) -> str:
    """The link's path, to open on the test hub (the public address is a proxy in front of it)."""
    return url.removeprefix(BASE)


def _links(hub: Any, alert_id: int, recipient: str = CONTACT, channel: str = "sms") -> dict[str, str]:
    made = hub.engine.config.links.links(alert_id, recipient, channel)
    assert made is not None
    return made.as_dict()


async def _state(scene: Scene, alert_id: int) -> tuple[Any, ...]:
    rows = await scene.sql("SELECT acknowledged_at IS NOT NULL, acknowledged_by, closed_at IS NOT NULL FROM alerts"
                           " WHERE id = %s", (alert_id,))
    return rows[0]


async def _kinds(scene: Scene, alert_id: int) -> list[tuple[str, str, dict[str, Any]]]:
    rows = await scene.sql("SELECT kind, actor, details FROM alert_events WHERE alert_id = %s ORDER BY id",
                           (alert_id,))
    return [(k, a, d) for k, a, d in rows]


async def _refusals(scene: Scene) -> list[dict[str, Any]]:
    rows = await scene.sql("SELECT target, details FROM audit_log WHERE action = 'action_link.refused' ORDER BY id")
    return [{"target": t, **d} for t, d in rows]


async def test_a_contact_acknowledges_from_the_link_once_without_logging_in(scene: Scene, running_hub: Any) -> None:
    alert_id = await scene.alert("in", severity="critical")
    links = _links(running_hub, alert_id)
    assert links["seen"].startswith(f"{BASE}/a/{alert_id}/") and links["seen"].endswith("?do=seen")
    async with httpx.AsyncClient(base_url=scene.base, timeout=10) as http:
        page = await http.get(_local(links["seen"], scene))
        # Opening the page shows who, where and when, and a form its script posts; the GET itself changes nothing,
        # so a messenger's link preview cannot acknowledge.
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        assert "Name of IN-R" in page.text and "IN-H 1号楼 101" in page.text and 'id="act"' in page.text
        assert '<script src="/static/action.js"' in page.text
        assert (await _state(scene, alert_id))[0] is False
        done = await http.post(_local(links["page"], scene), data={"action": "seen"})
        assert done.status_code == 200 and 'data-result="done"' in done.text
        again = await http.post(_local(links["page"], scene), data={"action": "seen"})
        assert again.status_code == 409 and 'data-result="reused"' in again.text
        reopened = await http.get(_local(links["seen"], scene))
        assert 'data-result="already"' in reopened.text and 'id="act"' not in reopened.text
        script = await http.get("/static/action.js")
        assert script.status_code == 200 and "form.submit()" in script.text
    assert await _state(scene, alert_id) == (True, None, False)
    entries = await _kinds(scene, alert_id)
    kinds = [k for k, _, _ in entries]
    assert kinds == ["created", "acknowledged", "action_refused"]
    _, actor, ack = entries[1]
    assert actor == "Contact of IN-R" and ack["via"] == "sms-link" and ack["actor_kind"] == "contact"
    assert ack["summary"] == "acknowledged by Contact of IN-R via sms-link"
    assert entries[2][2]["reason"] == "reused" and entries[2][2]["recipient_id"] == CONTACT
    assert [r["reason"] for r in await _refusals(scene)] == ["reused"]


async def test_forged_expired_other_alert_and_closed_links_are_refused_and_recorded(
        scene: Scene, running_hub: Any, settings: Settings) -> None:
    first = await scene.alert("in")
    second = await scene.alert("in")
    links = _links(running_hub, first)
    token = links["page"].rsplit("/", 1)[1]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    old = ActionLinks(link_secret(None, settings.data_dir), BASE, 3600, clock=lambda: time.time() - 7200)
    expired = old.links(first, CONTACT, "sms")
    assert expired is not None
    async with httpx.AsyncClient(base_url=scene.base, timeout=10) as http:
        res = {
            "forged": await http.post(f"/a/{first}/{forged}", data={"action": "seen"}),
            "garbage": await http.post(f"/a/{first}/not-a-token", data={"action": "seen"}),
            "other_alert": await http.post(f"/a/{second}/{token}", data={"action": "seen"}),
            "expired": await http.post(_local(expired.page, scene), data={"action": "seen"}),
        }
        await scene.sql("UPDATE alerts SET closed_at = now() WHERE id = %s", (first,))
        res["closed"] = await http.post(_local(links["page"], scene), data={"action": "coming"})
    assert {k: r.status_code for k, r in res.items()} == {
        "forged": 403, "garbage": 403, "other_alert": 403, "expired": 410, "closed": 410}
    assert all("Name of IN-R" not in r.text for r in res.values())  # a refused link shows nothing of the alert
    assert await _state(scene, first) == (False, None, True) and await _state(scene, second) == (False, None, False)
    refusals = await _refusals(scene)
    assert [(r["target"], r["reason"]) for r in refusals] == [
        (f"alert:{first}", "forged"), (f"alert:{first}", "forged"), (f"alert:{second}", "other_alert"),
        (f"alert:{first}", "expired"), (f"alert:{first}", "closed")]
    # Genuine links (expired, closed) are also on their alert's timeline; forged ones never write to an alert.
    timeline = [(d["reason"], d["action"]) for k, _, d in await _kinds(scene, first) if k == "action_refused"]
    assert timeline == [("expired", "seen"), ("closed", "coming")]
    assert [k for k, _, _ in await _kinds(scene, second)] == ["created"]


async def test_on_my_way_from_a_workers_link_takes_the_alert(scene: Scene, running_hub: Any) -> None:
    alert_id = await scene.alert("in", severity="critical")
    worker = scene.user_ids["cw-lianhua"]
    links = _links(running_hub, alert_id, f"user-{worker}", "wecom")
    async with httpx.AsyncClient(base_url=scene.base, timeout=10) as http:
        res = await http.post(_local(links["page"], scene), data={"action": "coming"})
        assert res.status_code == 200, res.text
        mine = await http.get("/api/escalations", headers=scene.headers["community_worker"])
    [item] = [i for i in mine.json()["items"] if i["alert_id"] == alert_id]
    assert item["responder_id"] == worker and item["state"] == "on_the_way"
    entries = [(k, a, d["via"]) for k, a, d in await _kinds(scene, alert_id) if k != "created"]
    assert entries == [("acknowledged", "cw-lianhua", "wecom-link"), ("accepted", "cw-lianhua", "wecom-link"),
                       ("on_the_way", "cw-lianhua", "wecom-link")]


async def test_links_are_rate_limited(scene: Scene, running_hub: Any) -> None:
    alert_id = await scene.alert("in")
    page = _local(_links(running_hub, alert_id)["page"], scene)
    other = _local(_links(running_hub, alert_id, "contact-IN-R-2")["page"], scene)
    async with httpx.AsyncClient(base_url=scene.base, timeout=10) as http:
        codes = [(await http.get(page)).status_code for _ in range(12)]
        forged = [(await http.get(f"/a/{alert_id}/{n}.x.sms.1.y")).status_code for n in range(32)]
        # Bad links from this address do not lock out a genuine one sent from the same address (a shared proxy).
        still = (await http.get(other)).status_code
    assert codes[:10] == [200] * 10 and codes[10:] == [429, 429]
    assert forged[:30] == [403] * 30 and forged[30:] == [429, 429]
    assert still == 200
    # The flood's records stop at the limit.
    assert len(await _refusals(scene)) == 30


async def test_an_sms_reply_acknowledges_for_the_sender(scene: Scene, running_hub: Any) -> None:
    alert_id = await scene.alert("in", severity="critical")
    # What the engine records when the SMS reached the contact: the reply is matched to this alert by it.
    await scene.sql("INSERT INTO alert_events (alert_id, kind, actor, details) VALUES (%s, 'notification', 'engine',"
                    " %s)", (alert_id, Jsonb({"recipient_id": CONTACT, "result": "ok", "channel": "sms"})))
    async with httpx.AsyncClient(base_url=scene.base, timeout=10) as http:
        wrong = await http.post("/a/sms-inbound", json={"from": "+86 138 0000 0001", "text": "1"},
                                headers={"X-Eldercare-Secret": "guess"})
        unknown = await http.post("/a/sms-inbound", params={"secret": INBOUND}, json={"from": "139", "text": "1"})
        noise = await http.post("/a/sms-inbound", params={"secret": INBOUND},
                                json={"from": "+8613800000001", "text": "thanks"})
        ok = await http.post("/a/sms-inbound", json={"from": "+86 138 0000 0001", "text": " 1 "},
                             headers={"X-Eldercare-Secret": INBOUND})
        again = await http.post("/a/sms-inbound", data={"mobile": "13800000001", "content": "1"},
                                params={"secret": INBOUND})
        bad = await http.post("/a/sms-inbound", params={"secret": INBOUND}, content=b"[1]",
                              headers={"content-type": "application/json"})
    assert wrong.status_code == 403
    assert unknown.json() == {"result": "no_open_alert", "alert_id": None}
    assert noise.json()["result"] == "ignored"
    assert ok.status_code == 200 and ok.json() == {"result": "acknowledged", "alert_id": alert_id}
    assert again.json() == {"result": "reused", "alert_id": alert_id}
    assert bad.status_code == 400
    [ack] = [(a, d) for k, a, d in await _kinds(scene, alert_id) if k == "acknowledged"]
    assert ack[0] == "Contact of IN-R" and ack[1]["via"] == "sms-reply"
    reasons = [(r["target"], r["reason"]) for r in await _refusals(scene)]
    assert reasons == [("sms-inbound", "bad_inbound_secret"), (f"alert:{alert_id}", "reused")]


def test_link_format_is_short_and_bound_to_its_fields() -> None:
    links = ActionLinks(b"k" * 32, BASE + "/", 3600, clock=lambda: 1_800_000_000)
    made = links.links(42, "contact-R-7-2", "sms")
    assert made is not None and made.page.startswith(f"{BASE}/a/42/42.")
    token = made.page.rsplit("/", 1)[1]
    assert len(made.seen) < 110 and re.fullmatch(r"[A-Za-z0-9_.-]+", token)
    claim = links.verify(42, token)
    assert (claim.alert_id, claim.recipient_id, claim.channel, claim.via) == (42, "contact-R-7-2", "sms", "sms-link")
    other = ActionLinks(b"x" * 32, BASE, 3600, clock=lambda: 1_800_000_000)
    with pytest.raises(Exception, match="signature"):
        other.verify(42, token)
    assert ActionLinks(b"k" * 32, None, 3600).links(42, "contact-R-7-2", "sms") is None
