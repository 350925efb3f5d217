"""The live feed: Server-Sent Events of alert and device changes in the caller's scope, resumable by id."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse

from hub.api.deps import HubDep, oauth2
from hub.api.schemas import fetch_all, fetch_one
from hub.users import AuthError, User, scope_filter, user_for_token

if TYPE_CHECKING:
    from hub.service import Hub

router = APIRouter(prefix="/api", tags=["feed"])

POLL_S = 0.5
HEARTBEAT_S = 15.0
RECHECK_TOKEN_S = 30.0
MAX_STREAM_S = 30 * 60  # then the browser reconnects with Last-Event-ID and nothing is lost
MAX_STREAMS_PER_USER = 8
BATCH = 200
# Feed ids are handed out at insert but become visible at commit, so a lower id can appear after a
# higher one was sent. Each poll looks this many ids back for late arrivals it has not sent yet.
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
    """What one stream has sent: the highest id, and recent ids so late arrivals are sent exactly once."""

    def __init__(self, after: int) -> None:
        self.after = self.floor = after
        self.recent: deque[int] = deque(maxlen=LOOKBACK * 2)

    def low(self) -> int:
        """The lowest id the next poll considers."""
        return max(self.after - LOOKBACK, self.floor)

    def sent(self, event_id: int) -> None:
        """Remember a delivered id."""
        self.recent.append(event_id)
        self.after = max(self.after, event_id)


async def _poll(hub: Hub, user: User, cursor: Cursor) -> list[dict[str, Any]]:
    where, params = scope_filter(user, "f.region_path", "f.resident_id")
    async with hub.pool.connection() as conn:
        return await fetch_all(
            conn, "SELECT f.id, f.ts, f.kind, f.region_path, f.resident_id, f.payload FROM feed_events f"  # noqa: S608
            f" WHERE f.id > %(low)s AND NOT (f.id = ANY(%(sent)s::bigint[])) AND {where} ORDER BY f.id LIMIT %(batch)s",
            {**params, "low": cursor.low(), "sent": list(cursor.recent), "batch": BATCH})


async def _head(hub: Hub) -> int:
    async with hub.pool.connection() as conn:
        row = await fetch_one(conn, "SELECT COALESCE(max(id), 0) AS head FROM feed_events")
    return int(row["head"]) if row else 0


def _event(row: dict[str, Any], cursor_id: int) -> str:
    data = json.dumps({**row, "ts": row["ts"].isoformat()}, ensure_ascii=False, separators=(",", ":"))
    # `id` is the stream's cursor (the highest id sent), so a reconnect resumes after everything seen.
    return f"id: {cursor_id}\nevent: {row['kind']}\ndata: {data}\n\n"


async def _stream(request: Request, hub: Hub, user: User, token: str, cursor: Cursor) -> AsyncIterator[str]:
    streams = _streams(request)
    started = last_beat = last_check = time.monotonic()
    had_ingest = hub.source is not None
    try:
        yield f"retry: 2000\n: feed for {user.role}\n\n"
        while time.monotonic() - started < MAX_STREAM_S:
            # Ingestion stops first when the hub shuts down; end the stream so the server can exit.
            if (had_ingest and hub.source is None) or await request.is_disconnected():
                return
            if time.monotonic() - last_check > RECHECK_TOKEN_S:
                last_check = time.monotonic()
                await _authenticate(hub, token)  # a revoked or expired token ends the stream
            rows = await _poll(hub, user, cursor)
            for row in rows:
                cursor.sent(row["id"])
                yield _event(row, cursor.after)
            if rows:
                last_beat = time.monotonic()
                if len(rows) == BATCH:
                    continue
            elif time.monotonic() - last_beat > HEARTBEAT_S:
                last_beat = time.monotonic()
                yield ": ping\n\n"
            await asyncio.sleep(POLL_S)
    except HTTPException:
        return
    finally:
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
    cursor = Cursor(since if since is not None else await _head(hub))
    streams = _streams(request)
    if streams.get(user.id, 0) >= MAX_STREAMS_PER_USER:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many open feeds for this user")
    streams[user.id] = streams.get(user.id, 0) + 1
    return StreamingResponse(_stream(request, hub, user, token, cursor), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _streams(request: Request) -> dict[int, int]:
    state = request.app.state
    if not hasattr(state, "feed_streams"):
        state.feed_streams = {}
    streams: dict[int, int] = state.feed_streams
    return streams
