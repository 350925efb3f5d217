"""The async connection pool, opened with retries so the hub waits for a database that is late."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any
from weakref import WeakKeyDictionary

import psycopg
from psycopg_pool import AsyncConnectionPool

from hub.health import Health
from hub.settings import mask_url

log = logging.getLogger(__name__)


RECHECK_AFTER_S = 2.0
"""A connection that answered a check this recently is lent without another round trip."""
_checked: WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = WeakKeyDictionary()


async def _check(conn: psycopg.AsyncConnection[Any]) -> None:
    # Every lending used to cost a SELECT 1, half the escalation engine's round trips under load. A server
    # restarted within the last RECHECK_AFTER_S still fails its first use, which callers already retry.
    now = time.monotonic()
    last = _checked.get(conn)
    if last is not None and now - last < RECHECK_AFTER_S and conn.pgconn.status == psycopg.pq.ConnStatus.OK:
        return
    await conn.execute("SELECT 1")
    _checked[conn] = now


def make_pool(url: str, max_size: int) -> AsyncConnectionPool[Any]:
    """A pool that checks connections before lending them (at most every 2 s each), so a restarted server is noticed."""
    return AsyncConnectionPool(
        url,
        min_size=2,
        max_size=max_size,
        open=False,
        timeout=10,
        # While a caller waits (up to `timeout`), the pool keeps retrying the connection (1, 2, 4 s...),
        # so a restarted server is used within about a second. 0 would give up after the first
        # refusal and leave the writer waiting out its whole timeout with the database already back.
        reconnect_timeout=10,
        check=_check,
        kwargs={"connect_timeout": 5, "application_name": "eldercare-hub"},
    )


async def wait_for_database(url: str, health: Health, stop: asyncio.Event | None = None) -> None:
    """Block until the database answers, retrying with capped exponential backoff and jitter."""
    attempt = 0
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(url, connect_timeout=5)
            await conn.close()
            health.database.up()
            return
        except psycopg.OperationalError as err:
            attempt += 1
            delay = min(30.0, 0.5 * 2 ** min(attempt, 6)) * random.uniform(0.5, 1.0)  # noqa: S311
            health.database.down(f"unreachable: {type(err).__name__}")
            log.warning("database %s unreachable; retrying in %.1f s", mask_url(url), delay)
            if stop is not None and stop.is_set():
                raise
            await asyncio.sleep(delay)
