"""The 3G watch emulator speaks the TCP protocol like a real watch and waits for its acknowledgements."""

from __future__ import annotations

import asyncio

import pytest

from devices.watch3g import Frame, WatchGateway
from simulators.watch_emulator import WatchEmulator, WatchError

pytestmark = pytest.mark.anyio


async def test_lk_ud_and_al_frames_reach_the_gateway_and_are_acknowledged():
    frames: list[Frame] = []

    async def sink(frame: Frame) -> None:
        frames.append(frame)

    async with WatchGateway(sink) as gw, WatchEmulator("8800000001", "127.0.0.1", gw.port) as watch:
        await watch.position(22.55, 114.05)
        ack_s = await watch.alarm(["sos"], 22.55, 114.05)
        await watch.alarm(["fall"], None, None)
        await asyncio.sleep(0.1)
    assert ack_s < 1.0
    assert [f.kind for f in frames] == ["LK", "UD", "AL", "AL"]
    assert frames[2].alarms == {"sos"} and frames[2].location is not None
    assert frames[3].alarms == {"fall"} and frames[3].location is None


async def test_an_unacknowledged_alarm_is_resent_then_reported():
    received: list[bytes] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            received.append(data)
            if data.endswith(b"LK,0,0,80]"):
                writer.write(b"[3G*8800000002*0002*LK]")
                await writer.drain()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        watch = WatchEmulator("8800000002", "127.0.0.1", port, ack_timeout=0.2, retries=2)
        await watch.connect()
        with pytest.raises(WatchError, match="no AL acknowledgement after 3 tries"):
            await watch.alarm(["sos"], 22.5, 114.0)
        await watch.close()
    assert sum(b"*AL," in chunk for chunk in received) == 3


async def test_no_gateway_is_a_clear_error():
    with pytest.raises(WatchError, match="no watch gateway"):
        await WatchEmulator("8800000003", "127.0.0.1", 1).connect()
