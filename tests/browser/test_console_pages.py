"""Every console page in both languages at desk and phone sizes; each test changes something through the UI and
checks it through the API."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.browser.conftest import open_console
from tests.browser.test_admin_console import shot

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

PAGES = ["overview", "alerts", "escalations", "visits", "fleet", "sla", "manage", "import"]
MANAGE = ["regions", "households", "residents", "devices", "users"]


async def _seed(world: Any, db_url: str) -> None:
    await world.resident("R1", "sz/futian/lianhua", contacts=2)
    await world.resident("R2", "sz/futian/lianhua")
    await world.device("WB-R1", "wristband", "R1")
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await conn.execute("INSERT INTO alerts (resident_id, household_id, region_path, type, severity, first_ts,"
                           " last_ts, location) VALUES ('R1', 'HR1', 'sz/futian/lianhua', 'fall', 'high', now(),"
                           " now(), '{\"lat\": 22.55, \"lon\": 114.05, \"acc_m\": 20}')")
        await conn.execute("UPDATE regions SET outline = '[[114.04,22.54],[114.06,22.54],[114.06,22.56]]'"
                           " WHERE path = 'sz/futian/lianhua'")


async def _no_sideways_scroll(page: Any) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 392, f"the page scrolls sideways at 390 px: {width}"


@pytest.mark.parametrize(("lang", "phone"), [("zh", False), ("en", False), ("zh", True), ("en", True)])
async def test_every_page(running_hub, world, settings, chromium, lang, phone, tmp_path) -> None:
    await _seed(world, settings.db_url)
    await world.user("admin", "admin")
    errors: list[str] = []
    base = f"http://127.0.0.1:{settings.api_port}"
    context, page = await open_console(chromium, base, "admin", "admin-pw", phone=phone, lang=lang, errors=errors)
    assert await page.get_attribute("html", "lang") == ("zh-CN" if lang == "zh" else "en")
    for name in PAGES:
        await page.click(f"#tabs [data-view={name}]")
        await page.wait_for_selector(f"#view-{name}:not([hidden])")
        if name == "manage":
            for part in MANAGE:
                await page.click(f"#manage-tabs [data-manage={part}]")
                await page.wait_for_selector(f"#m-{part}:not([hidden]) tbody tr")
                if phone:
                    await _no_sideways_scroll(page)
        elif phone:
            await page.wait_for_timeout(200)
            await _no_sideways_scroll(page)
    await page.click("#tabs [data-view=overview]")
    await page.wait_for_selector("#ov-map circle.map-alert")
    assert await page.locator("#ov-map polygon.outline").count() == 1
    assert (await page.text_content("#ov-elders b")).strip() == "2"
    if phone:
        title = await page.locator("header h1").bounding_box()
        assert title is not None and title["height"] < 40
        await page.click("#tabs [data-view=alerts]")
        await page.wait_for_selector("#alerts tbody tr td[data-label]")
        await shot(page, f"console-phone-alerts-{lang}.png", tmp_path)
    else:
        await page.click("#wall")
        await page.wait_for_selector("body.wall #view-overview:not([hidden])")
        big = await page.evaluate("parseFloat(getComputedStyle(document.querySelector('#ov-elders b')).fontSize)")
        assert big >= 40
        await shot(page, f"console-overview-{lang}.png", tmp_path)
    await context.close()
    assert not errors, errors


async def test_resident_management_in_english(running_hub, world, settings, chromium, api_as, tmp_path) -> None:
    await world.region_tree()
    await world.user("admin", "admin")
    api = await api_as("admin", "admin-pw")
    errors: list[str] = []
    base = f"http://127.0.0.1:{settings.api_port}"
    context, page = await open_console(chromium, base, "admin", "admin-pw", lang="en", errors=errors)
    await page.click("#tabs [data-view=manage]")

    # A household: a latitude off the earth is refused next to its field, then fixed.
    await page.click("#manage-tabs [data-manage=households]")
    hf = page.locator("#f-household")
    await hf.locator("[name=id]").fill("H-NEW")
    await hf.locator("[name=region_path]").select_option("sz/futian/lianhua")
    await hf.locator("[name=address]").fill("5 Lotus Road")
    await hf.locator("[name=lat]").fill("95")
    await hf.locator("[name=lon]").fill("114.05")
    await hf.locator("button[type=submit]").click()
    await page.wait_for_selector("#f-household [data-err=lat]:not(:empty)")
    assert await page.locator("#f-household [name=lat].invalid").count() == 1
    await hf.locator("[name=lat]").fill("22.55")
    await hf.locator("button[type=submit]").click()
    await page.wait_for_selector("#t-households td:text-is('H-NEW')")
    assert (await api.get("/api/households/H-NEW"))["lat"] == 22.55

    # A resident with two contacts (the second moved up), notes, risk flags and a safe zone.
    await page.click("#manage-tabs [data-manage=residents]")
    rf = page.locator("#f-resident")
    await rf.locator("[name=id]").fill("R-NEW")
    await rf.locator("[name=household_id]").fill("H-NEW")
    await rf.locator("[name=name]").fill("Li Hua")
    await rf.locator("[name=birth_year]").fill("1938")
    await rf.locator("[name=risk_flags]").fill("living_alone, dementia")
    await rf.locator("[name=medical_notes]").fill("Hypertension; takes amlodipine")
    first = page.locator("#contact-rows .contact-row").nth(0)
    await first.locator(".c-name").fill("Son")
    await first.locator(".c-phone").fill("13800000001")
    await page.click("#add-contact")
    second = page.locator("#contact-rows .contact-row").nth(1)
    await second.locator(".c-name").fill("Daughter")
    await second.locator(".c-phone").fill("not a phone")
    await rf.locator("[name=zone_lat]").fill("22.55")
    await rf.locator("[name=zone_lon]").fill("114.05")
    await rf.locator("[name=zone_radius]").fill("300")
    await rf.locator("button[type=submit]").click()
    await page.wait_for_selector("#contact-rows .contact-row:nth-child(2) .err:not(:empty)")  # the bad phone
    await second.locator(".c-phone").fill("13900000002")
    await second.locator("button[title='Move up']").click()
    await rf.locator("button[type=submit]").click()
    await page.wait_for_selector("#t-residents td:text-is('R-NEW')")
    r = await api.get("/api/residents/R-NEW")
    assert [c["name"] for c in r["contacts"]] == ["Daughter", "Son"]
    assert r["risk_flags"] == ["living_alone", "dementia"] and r["medical_notes"].startswith("Hypertension")
    assert (await api.get("/api/residents/R-NEW/safe-zones"))[0]["radius_m"] == 300

    # Editing: the notes change, and the change is audited.
    await page.click("#t-residents td:text-is('R-NEW')")
    await page.wait_for_selector("#f-resident[data-editing='R-NEW']")
    await rf.locator("[name=medical_notes]").fill("Hypertension; diabetes")
    await rf.locator("button[type=submit]").click()
    await page.wait_for_selector("#f-resident:not([data-editing='R-NEW'])")
    assert (await api.get("/api/residents/R-NEW"))["medical_notes"] == "Hypertension; diabetes"
    audit = {a["action"] for a in (await api.get("/api/audit"))["items"]}
    assert {"household.create", "resident.create", "resident.update", "resident.safe_zones"} <= audit

    # Devices: provision, move to another resident, rotate (a new password is shown), revoke.
    await world.resident("R2", "sz/futian/lianhua")
    await page.click("#manage-tabs [data-manage=devices]")
    df = page.locator("#f-device")
    await df.locator("[name=id]").fill("DOOR-1")
    await df.locator("[name=type]").select_option("door")
    await df.locator("[name=household_id]").fill("H-NEW")
    await df.locator("button[type=submit]").click()
    await page.wait_for_selector("#credential:not([hidden])")
    first_password = await page.text_content("#cred-pass")
    await page.click("#cred-hide")
    await page.click("#t-devices tr[data-device='DOOR-1'] .d-move")
    bf = page.locator("#f-bind")
    await bf.locator("[name=household_id]").fill("HR2")
    await bf.locator("[name=room]").fill("hall")
    await bf.locator("button[type=submit]").click()
    await page.wait_for_selector("#f-bind[hidden]", state="attached")
    moved = await api.get("/api/devices/DOOR-1")
    assert moved["household_id"] == "HR2" and moved["room"] == "hall"
    page.on("dialog", lambda d: d.accept())
    await page.click("#t-devices tr[data-device='DOOR-1'] .d-rotate")
    await page.wait_for_selector("#credential:not([hidden])")
    assert await page.text_content("#cred-pass") not in {"", first_password}
    await page.click("#cred-hide")
    await page.click("#t-devices tr[data-device='DOOR-1'] .d-revoke")
    await page.wait_for_selector("#t-devices tr[data-device='DOOR-1']", state="detached")
    assert (await api.get("/api/devices/DOOR-1"))["status"] == "revoked"

    # Users: an operator scoped to a district, then disabled.
    await page.click("#manage-tabs [data-manage=users]")
    uf = page.locator("#f-user")
    await uf.locator("[name=username]").fill("op-ft")
    await uf.locator("[name=password]").fill("short")
    await uf.locator("[name=role]").select_option("operator")
    await uf.locator("[name=scope_path]").select_option("sz/futian")
    await uf.locator("button[type=submit]").click()
    await page.wait_for_selector("#f-user [data-err=password]:not(:empty)")
    await uf.locator("[name=password]").fill("long-enough-pw")
    await uf.locator("button[type=submit]").click()
    await page.wait_for_selector("#t-users td:text-is('op-ft')")
    await page.click("#t-users td:text-is('op-ft')")
    await uf.locator("[name=disabled]").check()
    await uf.locator("button[type=submit]").click()
    await page.wait_for_selector("#t-users tr:has(td:text-is('op-ft')) td:text-is('Disabled')")
    op = next(u for u in (await api.get("/api/users"))["items"] if u["username"] == "op-ft")
    assert op["disabled"] and op["scope_path"] == "sz/futian"
    await context.close()
    assert not errors, errors


async def test_worker_on_a_phone_records_a_visit_and_calls_a_contact(running_hub, world, settings, chromium,
                                                                      api_as) -> None:
    await world.resident("R1", "sz/futian/lianhua", contacts=2)
    await world.user("cw", "community_worker", scope_path="sz/futian/lianhua")
    errors: list[str] = []
    base = f"http://127.0.0.1:{settings.api_port}"
    context, page = await open_console(chromium, base, "cw", "cw-pw", phone=True, errors=errors)
    manifest = await page.evaluate("fetch('/static/manifest.json').then(r => r.json())")
    assert manifest["display"] == "standalone" and {i["sizes"] for i in manifest["icons"]} >= {"192x192", "512x512"}
    await page.click("#tabs [data-view=visits]")
    row = page.locator("#visit-list tbody tr").first
    await row.wait_for()
    await row.locator(".visit-outcome").select_option("concern")
    await row.locator(".visit-note").fill("血压偏高，已提醒服药")
    await row.locator(".record-visit").click()
    await page.wait_for_selector("#visit-list tbody tr.done")
    cw = await api_as("cw", "cw-pw")
    (visit,) = (await cw.get("/api/visits"))["items"]
    assert visit["outcome"] == "concern" and visit["notes"] == "血压偏高，已提醒服药"

    await page.click("#visit-list tbody tr a")
    await page.wait_for_selector("#view-resident:not([hidden]) #res-contacts li")
    links = await page.eval_on_selector_all("#res-contacts a[href^='tel:']", "els => els.map(e => e.href)")
    assert links == ["tel:13800000001", "tel:13800000002"]
    await _no_sideways_scroll(page)

    # The worker edits a resident of their community (as the API allows), and sees nothing else to manage.
    await page.click("#tabs [data-view=manage]")
    await page.wait_for_selector("#m-residents:not([hidden]) #t-residents tbody tr")
    assert await page.locator("#manage-tabs [data-manage=devices]").is_hidden()
    assert await page.locator("#manage-tabs [data-manage=users]").is_hidden()
    await page.click("#t-residents td:text-is('R1')")
    await page.wait_for_selector("#f-resident[data-editing='R1']")
    await page.fill("#f-resident [name=medical_notes]", "糖尿病，每日注射胰岛素")
    await page.click("#f-resident button[type=submit]")
    await page.wait_for_selector("#f-resident:not([data-editing='R1'])")
    assert (await cw.get("/api/residents/R1"))["medical_notes"] == "糖尿病，每日注射胰岛素"
    await _no_sideways_scroll(page)
    await context.close()
    assert not errors, errors


async def test_dry_run_import_pages_through_every_bad_row(running_hub, world, settings, chromium, api_as,
                                                          tmp_path) -> None:
    await world.region_tree()
    await world.user("op", "operator", scope_path="sz/futian")
    roster = tmp_path / "roster.csv"
    lines = ["Resident ID,Name,Birth year,Household ID,Community"]
    lines += [f"R{i},Elder {i},{'19x0' if i % 2 else '1940'},H{i},sz/futian/lianhua" for i in range(500)]
    roster.write_text("\n".join(lines) + "\n", encoding="utf-8")
    errors: list[str] = []
    base = f"http://127.0.0.1:{settings.api_port}"
    context, page = await open_console(chromium, base, "op", "op-pw", lang="en", errors=errors)
    await page.click("#tabs [data-view=import]")
    await page.set_input_files("#import-file", str(roster))
    await page.check("#import-dry")
    await page.click("#import-go")
    await page.wait_for_selector("#import-state[data-state=done]", timeout=60_000)
    assert await page.locator("#import-errors tbody tr").count() == 200
    assert await page.text_content("#import-errors tbody tr td") == "3"  # the spreadsheet's row number
    await page.click("#import-more")
    await page.wait_for_selector("#import-prev:not([hidden])")
    await page.wait_for_function("document.querySelectorAll('#import-errors tbody tr').length === 50")
    api = await api_as("op", "op-pw")
    (job,) = await api.get("/api/imports")
    assert job["dry_run"] and job["error_count"] == 250 and job["counts"]["residents_created"] == 250
    assert (await api.get("/api/residents"))["items"] == []  # a dry run writes nothing
    await context.close()
    assert not errors, errors
