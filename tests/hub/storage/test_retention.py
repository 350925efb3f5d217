"""Retention: server jobs where they exist, drop_chunks otherwise; dead letters and the feed on every edition."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from hub.storage import capabilities, policies, retention

PLAN = policies.Plan(telemetry_keep=timedelta(days=10), dead_letters_keep=timedelta(days=3),
                     feed_keep=timedelta(days=2))


def _old_and_new(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for age in ("20 days", "1 hour"):
            conn.execute("INSERT INTO readings (ts, device_id, resident_id, metric, value)"
                         " VALUES (now() - %s::interval, 'W1', 'R1', 'hr', 1)", (age,))
            conn.execute("INSERT INTO dead_letters (received_at, topic, reason) VALUES (now() - %s::interval,"
                         " 't/x', 'unknown_device')", (age,))
            conn.execute("INSERT INTO feed_events (ts, kind, region_path) VALUES (now() - %s::interval,"
                         " 'alert', 'sz')", (age,))


async def _counts(url: str) -> tuple[int, ...]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        row = await (await conn.execute(
            "SELECT (SELECT count(*) FROM readings), (SELECT count(*) FROM dead_letters),"
            " (SELECT count(*) FROM feed_events)")).fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.anyio
async def test_dead_letters_and_feed_are_trimmed_and_uncovered_hypertables_dropped(edition):
    url = edition.fresh_db()
    policies.ensure(url, PLAN)
    _old_and_new(url)
    async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool:
        async with pool.connection() as conn:
            caps = await capabilities.detect(conn)
        removed = await retention.apply_once(pool, caps, PLAN)
    assert removed["dead_letters"] == 1 and removed["feed_events"] == 1
    if edition.license == "timescale":
        # The server's own retention job bounds the hypertables; the hub leaves them alone.
        assert "readings" not in removed
        assert await _counts(url) == (2, 1, 1)
    else:
        assert removed["readings"] == 1  # one chunk
        assert await _counts(url) == (1, 1, 1)


@pytest.mark.anyio
async def test_a_retention_job_removed_by_hand_is_covered_by_the_hub_again(community):
    url = community.fresh_db()
    policies.ensure(url, PLAN)
    _old_and_new(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT remove_retention_policy('readings')")
    async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool:
        async with pool.connection() as conn:
            caps = await capabilities.detect(conn)
        assert caps.retention_mode == "drop_chunks"
        removed = await retention.apply_once(pool, caps, PLAN)
    assert removed["readings"] == 1
