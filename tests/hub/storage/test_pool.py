"""The pool checks a connection before lending it, at most once per RECHECK_AFTER_S, and still notices a dead one."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from hub.storage import pool as pool_module
from hub.storage.pool import make_pool

pytestmark = pytest.mark.anyio


async def test_a_connection_checked_moments_ago_is_lent_without_another_round_trip(db_url):
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await pool_module._check(conn)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS  # SELECT 1 ran
        await conn.rollback()
        await pool_module._check(conn)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # skipped: checked just now
        pool_module._checked[conn] = time.monotonic() - pool_module.RECHECK_AFTER_S - 0.1
        await pool_module._check(conn)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS  # due again


async def test_a_connection_whose_server_side_died_is_replaced_once_the_window_passed(db_url, monkeypatch):
    monkeypatch.setattr(pool_module, "RECHECK_AFTER_S", 0.2)
    pool = make_pool(db_url, max_size=2)
    await pool.open(wait=True)
    try:
        pids = []
        async with pool.connection() as one, pool.connection() as two:  # both of min_size 2, checked now
            pids = [one.info.backend_pid, two.info.backend_pid]
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
        await asyncio.sleep(0.3)
        async with pool.connection() as conn:  # the check fails, the pool connects anew
            assert (await (await conn.execute("SELECT 1")).fetchone()) == (1,)
            assert conn.info.backend_pid not in pids
    finally:
        await pool.close()
