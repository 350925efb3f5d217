"""QR codes for device credentials: SVG, never cached."""

from __future__ import annotations

import httpx
import pytest

from tests.hub.api.conftest import Scene

pytestmark = pytest.mark.anyio


async def test_qr_is_an_uncached_svg(scene: Scene) -> None:
    async with httpx.AsyncClient(base_url=scene.base, headers=scene.headers["admin"]) as http:
        res = await http.post("/api/qr", json={"text": '{"username":"WB1","password":"x"}'})
        empty = await http.post("/api/qr", json={"text": ""})
    assert res.status_code == 200 and res.headers["content-type"].startswith("image/svg+xml")
    assert res.text.lstrip().startswith("<svg") and "<path" in res.text
    assert res.headers["cache-control"] == "no-store"
    assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body", "text"]
