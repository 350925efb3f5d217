"""Request bodies over ELDERCARE_API_MAX_BODY_BYTES are refused before they are read, on a real socket."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from hub.settings import Settings, load_settings

pytestmark = pytest.mark.anyio
LIMIT = 4096
UPLOAD_LIMIT = 16384


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings with a small body limit."""
    return load_settings(**{**settings.model_dump(exclude_unset=True), "api_max_body_bytes": LIMIT,
                             "api_max_upload_bytes": UPLOAD_LIMIT})


async def _exchange(port: int, head: bytes, chunks: list[bytes]) -> bytes:
    """Send a request head and some body bytes, then read the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for chunk in chunks:
            writer.write(chunk)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


async def test_declared_length_over_the_limit_is_refused_without_reading_the_body(running_hub: Any,
                                                                                  settings: Settings) -> None:
    # 10 MB announced, not one byte of it sent: only a refusal based on the header can answer.
    head = (b"POST /api/residents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000000\r\n\r\n")
    answer = await _exchange(settings.api_port, head, [])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"larger than 4096 bytes" in answer
    assert b"x-content-type-options: nosniff" in answer.lower()


async def test_chunked_body_is_refused_once_it_passes_the_limit(running_hub: Any, settings: Settings) -> None:
    head = (b"POST /api/auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"a" * 1024
    # Five 1 KiB chunks pass the 4 KiB limit; the stream is left open, so a server waiting for its end would hang.
    answer = await _exchange(settings.api_port, head, [b"400\r\n" + chunk + b"\r\n"] * 5)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


async def test_bodies_within_the_limit_work_and_larger_ones_get_413(running_hub: Any, world: Any,
                                                                   settings: Settings) -> None:
    await world.user("small", "operator")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.api_port}") as http:
        res = await http.post("/api/auth/token", data={"username": "small", "password": "small-pw"})
        assert res.status_code == 200
        res = await http.post("/api/regions", json={"path": "x" * 5000, "level": "city", "name": "n"},
                              headers={"Authorization": f"Bearer {res.json()['access_token']}"})
        assert res.status_code == 413


async def test_uploads_have_their_own_larger_limit(running_hub: Any, world: Any, settings: Settings) -> None:
    await world.user("uploader", "operator")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.api_port}") as http:
        # multipart/form-data over the body limit but under the upload limit reaches the route.
        fields = {"username": "uploader", "password": "uploader-pw", "client_id": "x" * (LIMIT * 2)}
        res = await http.post("/api/auth/token", files={k: (None, v) for k, v in fields.items()})
        assert res.status_code == 200, res.text
    head = (b"POST /api/auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: %d\r\n\r\n" % (UPLOAD_LIMIT + 1))
    answer = await _exchange(settings.api_port, head, [])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"larger than 16384 bytes" in answer
