"""The console in a real Chromium: an SOS appears live, is acknowledged, and stays invisible to other communities."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from simulators.native import message

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "console.png"
UPDATE_SCREENSHOT = os.environ.get("ELDERCARE_UPDATE_SCREENSHOT") == "1"
"""Only then does the test overwrite the committed screenshot; otherwise every test run dirtied the tree."""


async def _login(page: Any, base: str, username: str, password: str) -> None:
    await page.goto(f"{base}/console")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("#login-btn")
    await page.wait_for_selector("#live.on", timeout=10_000)  # the SSE feed is connected


async def test_operator_sees_sos_live_and_acknowledges_it(running_hub, world, devices, settings, chromium,
                                                          tmp_path) -> None:
    rid = await world.resident("R1", "sz/futian/lianhua")
    password = await world.device("WB1", "wristband", rid)
    await world.user("op", "operator")
    await world.user("cw-shekou", "community_worker", scope_path="sz/nanshan/shekou")
    base = f"http://127.0.0.1:{settings.api_port}"
    errors: list[str] = []

    context = await chromium.new_context(viewport={"width": 1400, "height": 860}, locale="zh-CN")
    page = await context.new_page()
    page.on("pageerror", lambda err: errors.append(str(err)))
    await _login(page, base, "op", "op-pw")
    await page.wait_for_selector("#view-alerts:not([hidden])")
    assert await page.locator("#alerts tbody tr").count() == 0

    client = await devices.connect("WB1", password)
    try:
        await client.publish(world.topic("wristband", "WB1", "sos"),
                             message({"location": {"lat": 22.5431, "lon": 114.0579, "acc_m": 35}}), qos=1)
    finally:
        await client.__aexit__(None, None, None)

    # No reload: the row arrives through the live feed.
    row = page.locator("#alerts tbody tr.sev-critical")
    await row.first.wait_for(timeout=10_000)
    assert await row.count() == 1
    await row.first.click()
    await page.wait_for_selector("#timeline li.tl-created")
    await page.wait_for_selector("#map-accuracy")
    assert "22.543100, 114.057900 ±35 m" in await page.text_content("#detail-location")
    await page.click("#btn-ack")
    await page.wait_for_selector("#timeline li.tl-acknowledged", timeout=10_000)
    await page.fill("#comment", "已电话联系老人，社区工作人员前往")
    await page.click("#btn-comment")
    await page.wait_for_selector("#timeline li.tl-comment", timeout=10_000)
    assert "op" in await page.text_content("#timeline li.tl-acknowledged")
    shot = SCREENSHOT if UPDATE_SCREENSHOT else tmp_path / "console.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG")

    # Switch to English without reloading: the labels follow.
    await page.click("#lang")
    assert await page.text_content("#tabs [data-view=alerts]") == "Live alerts"
    await context.close()

    # A community worker of another community never sees it, in any list.
    other = await chromium.new_context(locale="zh-CN")
    page = await other.new_page()
    page.on("pageerror", lambda err: errors.append(str(err)))
    await _login(page, base, "cw-shekou", "cw-shekou-pw")
    await page.wait_for_selector("#view-escalations:not([hidden])")
    await page.select_option("#esc-view", "open")
    await page.click("#tabs [data-view=alerts]")
    await page.select_option("#alert-state", "all")
    await page.wait_for_selector("#alerts-empty:not([hidden])", timeout=10_000)
    assert await page.locator("#alerts tbody tr").count() == 0
    await page.click("#tabs [data-view=escalations]")
    await page.wait_for_timeout(500)
    assert await page.locator("#escalations tbody tr").count() == 0
    await other.close()
    assert not errors, errors
