"""The live feed: Server-Sent Events of alert and device changes in the caller's scope, pushed, resumable by id.

One `FeedBroadcaster` per API process holds the only LISTEN connection. When a `feed_events` insert commits
(the table's trigger notifies), it reads the new rows once and hands each to every open stream that may see
it. No stream queries the database while it is open: the load is the same for one stream or two hundred.
A stream that resumes (Last-Event-ID) replays what it missed from `feed_events` once, then goes live.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from alerts.timeline import FEED_CHANNEL
from hub.api.deps import HubDep, oauth2
from hub.api.schemas import fetch_all, fetch_one
from hub.users import AuthError, User, region_within, scope_filter, user_for_token

if TYPE_CHECKING:
    from hub.service import Hub

router = APIRouter(prefix="/api", tags=["feed"])
log = logging.getLogger(__name__)

TICK_S = 1.0  # a stream's local check for disconnects and shutdown; never a query
HEARTBEAT_S = 15.0
RECHECK_TOKEN_S = 30.0  # all open streams' tokens are checked together, in one query
SAFETY_FETCH_S = 10.0  # one fetch per process even without a notification (a NOTIFY lost in a reconnect)
MAX_STREAM_S = 30 * 60  # then the browser reconnects with Last-Event-ID and nothing is lost
MAX_STREAMS_PER_USER = 8
READY_S = 10.0  # a first stream waits this long for the database before it is refused
QUEUE_MAX = 2000  # a stream this far behind is closed; its browser resumes from the database
BATCH = 200
# Feed ids are handed out at insert but become visible at commit, so a lower id can appear after a
# higher one was read. Each fetch looks this many ids back for late arrivals it has not read yet.
LOOKBACK = 200


async def _authenticate(hub: Hub, token: str | None) -> User:
    if not token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not authenticated",
                            headers={"WWW-Authenticate": "Bearer"})
    async with hub.pool.connection() as conn:
        try:
            return await user_for_token(conn, token)
        except AuthError as err:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(err),
                                headers={"WWW-Authenticate": "Bearer"}) from None


class Cursor:
    """What has been read or sent: the highest id, and recent ids so late arrivals are handled exactly once."""

    def __init__(self, after: int) -> None:
        self.after = self.floor = after
        self.recent: deque[int] = deque(maxlen=LOOKBACK * 2)

    def low(self) -> int:
        """The lowest id the next read considers."""
        return max(self.after - LOOKBACK, self.floor)

    def seen(self, event_id: int) -> bool:
        """True when this id was already handled."""
        return event_id <= self.floor or event_id in self.recent

    def sent(self, event_id: int) -> None:
        """Remember a handled id."""
        self.recent.append(event_id)
        self.after = max(self.after, event_id)


def visible(user: User, row: dict[str, Any]) -> bool:
    """The scope rule of `hub.users.scope_filter`, applied to one row already read (prefix compare, no wildcards)."""
    if user.is_platform_wide:
        return True
    if user.role == "family":
        return bool(user.resident_id) and row["resident_id"] == user.resident_id
    scope = user.scope_path
    if scope is None:
        return False
    return region_within(row["region_path"], scope)


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(eq=False)
class Subscription:
    """One open stream: who it is for, and the rows waiting to be sent to it."""

    user: User
    token_hash: bytes
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(QUEUE_MAX))
    ended: str | None = None  # why the broadcaster closed it: "revoked", "behind"


class FeedBroadcaster:
    """Fans committed feed rows out to the open streams of this process: one LISTEN, one read per change."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool
        self._subs: set[Subscription] = set()
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._cursor: Cursor | None = None
        self._ready = asyncio.Event()
        self.fetches = 0  # reads of feed_events, for /metrics-style checks and the load test

    @property
    def streams(self) -> int:
        """Open streams."""
        return len(self._subs)

    async def subscribe(self, user: User, token: str) -> Subscription:
        """Register a stream; from now on every committed row it may see is queued for it."""
        sub = Subscription(user, _token_hash(token))
        self._subs.add(sub)
        if not self._tasks or any(t.done() for t in self._tasks):
            for task in self._tasks:
                task.cancel()
            self._ready.clear()
            self._cursor = None
            self._tasks = [asyncio.create_task(self._listen(), name="feed-listen"),
                           asyncio.create_task(self._fetch_loop(), name="feed-fetch")]
        # Rows committed after this point reach the stream: the broadcaster's starting head is read first.
        try:
            await asyncio.wait_for(self._ready.wait(), READY_S)
        except TimeoutError:
            self.unsubscribe(sub)
            raise
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a stream; the last one out stops the listener (the next stream starts it again)."""
        self._subs.discard(sub)
        if not self._subs:
            for task in self._tasks:
                task.cancel()
            self._tasks = []
            self._cursor = None

    async def _listen(self) -> None:
        conninfo = self._pool.conninfo
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True) \
                    if isinstance(conninfo, str) else None
                if conn is None:
                    # A pool without a conninfo string: the safety fetch still delivers, every 10 s.
                    await asyncio.Event().wait()
                    return
                async with conn:
                    await conn.execute(f"LISTEN {FEED_CHANNEL}")
                    self._dirty.set()  # anything committed while we were not listening
                    async for _ in conn.notifies():
                        self._dirty.set()
            except (psycopg.Error, OSError) as err:
                log.warning("live feed listener lost the database (%s); retrying", type(err).__name__)
                await asyncio.sleep(1.0)

    async def _fetch_loop(self) -> None:
        last_check = time.monotonic()
        while True:
            try:
                if self._cursor is None:
                    async with self._pool.connection() as conn:
                        row = await fetch_one(conn, "SELECT COALESCE(max(id), 0) AS head FROM feed_events")
                    self._cursor = Cursor(int(row["head"]) if row else 0)
                    self._ready.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._dirty.wait(), SAFETY_FETCH_S)
                self._dirty.clear()
                await self._fetch()
                if time.monotonic() - last_check > RECHECK_TOKEN_S:
                    last_check = time.monotonic()
                    await self._recheck_tokens()
            except (psycopg.Error, PoolTimeout, OSError) as err:
                log.warning("live feed read failed (%s); retrying", type(err).__name__)
                await asyncio.sleep(1.0)
            except Exception:  # a bug here must not leave every open console silent
                log.exception("live feed fan-out failed; retrying")
                await asyncio.sleep(1.0)

    async def _fetch(self) -> None:
        cursor = self._cursor
        assert cursor is not None
        while True:
            async with self._pool.connection() as conn:
                rows = await fetch_all(
                    conn, "SELECT id, ts, kind, region_path, resident_id, payload FROM feed_events"
                    " WHERE id > %(low)s AND NOT (id = ANY(%(seen)s::bigint[])) ORDER BY id LIMIT %(batch)s",
                    {"low": cursor.low(), "seen": list(cursor.recent), "batch": BATCH})
            self.fetches += 1
            for row in rows:
                cursor.sent(row["id"])
                for sub in list(self._subs):
                    if sub.ended is None and visible(sub.user, row):
                        try:
                            sub.queue.put_nowait(row)
                        except asyncio.QueueFull:
                            # Closed, and forgotten here too: a stream whose body never started cannot leak.
                            sub.ended = "behind"
                            self._subs.discard(sub)
            if len(rows) < BATCH:
                return

    async def _recheck_tokens(self) -> None:
        """End the streams whose login was revoked, expired or disabled: one query for all of them."""
        subs = [s for s in self._subs if s.ended is None]
        if not subs:
            return
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(
                "SELECT t.token_hash FROM auth_tokens t JOIN users u ON u.id = t.user_id"
                " WHERE t.token_hash = ANY(%s) AND t.expires_at > now() AND NOT u.disabled",
                ([s.token_hash for s in subs],))).fetchall()
        live = {bytes(r[0]) for r in rows}
        for sub in subs:
            if sub.token_hash not in live:
                sub.ended = "revoked"


def broadcaster(request: Request, hub: Hub) -> FeedBroadcaster:
    """This API process's broadcaster, made on first use."""
    state = request.app.state
    if getattr(state, "feed_broadcaster", None) is None:
        state.feed_broadcaster = FeedBroadcaster(hub.pool)
    found: FeedBroadcaster = state.feed_broadcaster
    return found


async def _replay(hub: Hub, user: User, cursor: Cursor) -> list[dict[str, Any]]:
    where, params = scope_filter(user, "f.region_path", "f.resident_id")
    async with hub.pool.connection() as conn:
        return await fetch_all(
            conn, "SELECT f.id, f.ts, f.kind, f.region_path, f.resident_id, f.payload FROM feed_events f"  # noqa: S608
            f" WHERE f.id > %(low)s AND {where} ORDER BY f.id LIMIT %(batch)s",
            {**params, "low": cursor.after, "batch": BATCH})


def _event(row: dict[str, Any], cursor_id: int) -> str:
    data = json.dumps({**row, "ts": row["ts"].isoformat()}, ensure_ascii=False, separators=(",", ":"))
    # `id` is the stream's cursor (the highest id sent), so a reconnect resumes after everything seen.
    return f"id: {cursor_id}\nevent: {row['kind']}\ndata: {data}\n\n"


async def _stream(request: Request, hub: Hub, user: User, sub: Subscription, feeds: FeedBroadcaster,
                  since: int | None) -> AsyncIterator[str]:
    streams = _streams(request)
    started = last_beat = time.monotonic()
    had_ingest = hub.source is not None
    cursor = Cursor(since or 0)
    try:
        yield f"retry: 2000\n: feed for {user.role}\n\n"
        if since is not None:
            # Catch up from the table once; rows arriving meanwhile wait in the queue and are not sent twice.
            while True:
                rows = await _replay(hub, user, cursor)
                for row in rows:
                    cursor.sent(row["id"])
                    yield _event(row, cursor.after)
                if len(rows) < BATCH:
                    break
        while time.monotonic() - started < MAX_STREAM_S:
            # Ingestion stops first when the hub shuts down; end the stream so the server can exit.
            if (had_ingest and hub.source is None) or sub.ended or await request.is_disconnected():
                return
            try:
                row = await asyncio.wait_for(sub.queue.get(), TICK_S)
            except TimeoutError:
                if time.monotonic() - last_beat > HEARTBEAT_S:
                    last_beat = time.monotonic()
                    yield ": ping\n\n"
                continue
            if not row or cursor.seen(row["id"]):
                continue
            cursor.sent(row["id"])
            last_beat = time.monotonic()
            yield _event(row, cursor.after)
    finally:
        feeds.unsubscribe(sub)
        streams[user.id] = streams.get(user.id, 1) - 1


@router.get("/feed", summary="Live feed (Server-Sent Events) of changes in your scope",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "events `alert` and `device`; `id` is the resume cursor"}})
async def live_feed(
    request: Request,
    hub: HubDep,
    bearer: Annotated[str | None, Depends(oauth2)],
    access_token: Annotated[str | None, Query(max_length=200, description="for EventSource, which "
                                              "cannot send headers")] = None,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
    since: Annotated[int | None, Query(ge=0, description="resume after this id (as Last-Event-ID)")] = None,
) -> StreamingResponse:
    """Without Last-Event-ID the stream starts at the present; with it, every later event in scope is replayed."""
    token = bearer or access_token
    user = await _authenticate(hub, token)
    assert token is not None
    if last_event_id is not None:
        if not last_event_id.isdigit():
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "Last-Event-ID must be a feed event id")
        since = int(last_event_id)
    streams = _streams(request)
    if streams.get(user.id, 0) >= MAX_STREAMS_PER_USER:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many open feeds for this user")
    streams[user.id] = streams.get(user.id, 0) + 1
    feeds = broadcaster(request, hub)
    try:
        sub = await feeds.subscribe(user, token)
    except TimeoutError:
        streams[user.id] -= 1
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the live feed cannot reach the database") from None
    except BaseException:
        streams[user.id] -= 1
        raise
    return StreamingResponse(_stream(request, hub, user, sub, feeds, since), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _streams(request: Request) -> dict[int, int]:
    state = request.app.state
    if not hasattr(state, "feed_streams"):
        state.feed_streams = {}
    streams: dict[int, int] = state.feed_streams
    return streams
