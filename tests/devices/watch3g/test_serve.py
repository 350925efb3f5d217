"""Tests for devices/watch3g/bridge.serve against a real Mosquitto on loopback."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest

from devices.watch3g import build_al, encode_status, serve


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    exe = shutil.which("mosquitto")
    if exe is None:
        pytest.skip("mosquitto is not installed")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            proc.poll()
            if proc.returncode is not None:
                pytest.skip("mosquitto did not start")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.mark.anyio
async def test_alarm_reaches_the_broker_and_is_acknowledged(broker: int) -> None:
    gateway_port = free_port()
    device = "8800000015"
    async with aiomqtt.Client("127.0.0.1", broker) as observer:
        await observer.subscribe("eldercare/v1/watch3g/#", qos=1)
        task = asyncio.create_task(serve("127.0.0.1", gateway_port, "127.0.0.1", broker))
        try:
            async with asyncio.timeout(10):
                while True:
                    try:
                        reader, writer = await asyncio.open_connection("127.0.0.1", gateway_port)
                        break
                    except OSError:
                        await asyncio.sleep(0.05)
                al = build_al(device, datetime.now(UTC), 0, 0, False, 40, encode_status(["sos"]))
                ack = b""
                while not ack:  # the bridge may still be connecting to the broker: resend like a watch
                    writer.write(al)
                    await writer.drain()
                    try:
                        ack = await asyncio.wait_for(reader.read(64), 0.5)
                    except TimeoutError:
                        continue
                assert ack == f"[3G*{device}*0002*AL]".encode()
                seen: dict[str, dict[str, object]] = {}
                async for message in observer.messages:
                    seen[str(message.topic).rsplit("/", 1)[1]] = json.loads(bytes(message.payload))
                    if "sos" in seen:
                        break
                assert seen["sos"]["alarms"] == ["sos"]
                writer.close()
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
