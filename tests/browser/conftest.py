"""Fixtures for the console's browser tests: Debian's Chromium under Playwright, logins, API checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = Path("/usr/bin/chromium")
HAS_CHROMIUM = CHROMIUM.exists()
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
DESK = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
async def chromium() -> Any:
    """Debian's Chromium driven by Playwright (skipped when either is missing)."""
    if not HAS_CHROMIUM:
        pytest.skip("/usr/bin/chromium is missing: apt-get install -y chromium fonts-noto-cjk")
    playwright_api = pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")
    async with playwright_api.async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            await b.close()


async def open_console(browser: Any, base: str, username: str, password: str, *, phone: bool = False,
                       lang: str = "zh", errors: list[str] | None = None) -> tuple[Any, Any]:
    """A logged-in page (desk or phone size, zh or en); page errors are appended to `errors`."""
    viewport = PHONE if phone else DESK
    context = await browser.new_context(viewport=viewport, locale="zh-CN" if lang == "zh" else "en-GB",
                                        is_mobile=phone, has_touch=phone, accept_downloads=True)
    await context.add_init_script(f"localStorage.setItem('lang', '{lang}')")
    page = await context.new_page()
    if errors is not None:
        page.on("pageerror", lambda err: errors.append(str(err)))
    await page.goto(f"{base}/console")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("#login-btn")
    await page.wait_for_selector("#live.on", timeout=15_000)
    return context, page


class Api:
    """The REST API as a user, for checking what the console did."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        self.http = httpx.AsyncClient(base_url=base, headers=headers, timeout=20)

    async def get(self, path: str, **params: Any) -> Any:
        """GET and decode, failing on any error status."""
        res = await self.http.get(path, params=params)
        res.raise_for_status()
        return res.json()

    async def close(self) -> None:
        """Release the connection pool."""
        await self.http.aclose()


@pytest.fixture
async def api_as(settings: Any, login: Any) -> Any:
    """`await api_as(user, password)` → an Api for that user."""
    made: list[Api] = []

    async def make(username: str, password: str) -> Api:
        base = f"http://127.0.0.1:{settings.api_port}"
        api = Api(base, await login(base, username, password))
        made.append(api)
        return api

    yield make
    for api in made:
        await api.close()
