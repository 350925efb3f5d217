"""Shapes shared by the routes: strict request bodies, bounded pagination and row helpers."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import HTTPException, Query, status
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict

T = TypeVar("T")

MAX_LIMIT = 200
MAX_OFFSET = 100_000

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"page size, at most {MAX_LIMIT}")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")]


class Body(BaseModel):
    """A request body: unknown fields are rejected with 422, never silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Page(BaseModel, Generic[T]):
    """One page of results; pass `next_offset` as `offset` for the next page (null: no more)."""

    items: list[T]
    next_offset: int | None


def page(rows: list[dict[str, Any]], limit: int, offset: int) -> tuple[list[dict[str, Any]], int | None]:
    """Split rows fetched with LIMIT limit+1 into the page and the next offset."""
    more = len(rows) > limit
    return rows[:limit], (offset + limit if more else None)


async def fetch_all(conn: AsyncConnection[Any], sql: str, params: dict[str, Any] | tuple[Any, ...] = ()
                    ) -> list[dict[str, Any]]:
    """Rows as dicts."""
    cur = conn.cursor(row_factory=dict_row)
    return await (await cur.execute(sql, params)).fetchall()


async def fetch_one(conn: AsyncConnection[Any], sql: str, params: dict[str, Any] | tuple[Any, ...] = ()
                    ) -> dict[str, Any] | None:
    """One row as a dict, or None."""
    cur = conn.cursor(row_factory=dict_row)
    return await (await cur.execute(sql, params)).fetchone()


def not_found(what: str, ident: object) -> HTTPException:
    """404 for absent or out-of-scope: the two look the same so scope leaks nothing."""
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} {ident} not found")


def conflict(message: str) -> HTTPException:
    """409 with a reason."""
    return HTTPException(status.HTTP_409_CONFLICT, message)


def bad_request(message: str) -> HTTPException:
    """400 with a reason."""
    return HTTPException(status.HTTP_400_BAD_REQUEST, message)
