"""Stopping cleanly at any point, start-up included."""

from __future__ import annotations

import asyncio
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
        await asyncio.wait({running})  # its CancelledError is not raised here; one aimed at us still is
        log.info("stopped before start-up finished")
        return False
    running.result()  # a failed start-up raises here
    return True


def raise_if_cancelled() -> None:
    """Re-raise a cancellation some library swallowed; called at the top of every long-running loop.

    On Python 3.11 `asyncio.wait_for` returns normally when its awaitable completes just as the task
    is cancelled, and database clients use it internally: the loop would then run on and a shutdown
    waiting for it would never end. The task still counts the request, so it is raised again here.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError

