"""A SIGTERM stops a hub process at once, even while it still waits for the database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from hub.embedded import free_port
from hub.shutdown import raise_if_cancelled, unless_stopped


@pytest.mark.anyio
async def test_unless_stopped_cancels_a_start_up_that_never_ends():
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cancelled.set()

    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, stop.set)
    assert await unless_stopped(forever(), stop) is False
    assert cancelled.is_set()
    assert await unless_stopped(asyncio.sleep(0), asyncio.Event()) is True


@pytest.mark.parametrize("command", ["worker", "escalation"])
def test_sigterm_while_the_database_is_unreachable_exits_promptly(command, tmp_path):
    nobody = free_port()  # nothing listens here
    env = {**os.environ, "ELDERCARE_DB_URL": f"postgresql://x:y@127.0.0.1:{nobody}/none",
           "ELDERCARE_MQTT_URL": f"mqtt://hub:pw@127.0.0.1:{free_port()}", "ELDERCARE_WORKERS": "2",
           "ELDERCARE_WORKER_INDEX": "1", "ELDERCARE_DATA_DIR": str(tmp_path / "var")}
    log = (tmp_path / "out.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "hub", command], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while b"unreachable" not in (tmp_path / "out.log").read_bytes():  # it is retrying now
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "out.log").read_text()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0, (tmp_path / "out.log").read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()


@pytest.mark.anyio
async def test_a_loop_stops_even_when_a_library_swallowed_its_cancellation():
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:
            raise_if_cancelled()
            rounds += 1
            with contextlib.suppress(asyncio.CancelledError):  # what 3.11's wait_for in a client library can do
                await asyncio.sleep(3600)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.01)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)
    assert done and task.cancelled()
    assert rounds == 1
