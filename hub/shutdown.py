"""Stopping cleanly at any point, start-up included."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


async def unless_stopped(job: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run `job` unless `stop` comes first (a SIGTERM while the database is still down); True if it ran."""
    running = asyncio.create_task(job)
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not running.done():
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        log.info("stopped before start-up finished")
        return False
    running.result()  # a failed start-up raises here
    return True
