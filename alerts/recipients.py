"""Turns recipient kinds (family, community_worker, duty_officer...) into people and targets from the DB."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection

from alerts.channels.base import Recipient

EMERGENCY_NAMES = {"emergency_120": ("120", "120急救中心"), "emergency_110": ("110", "110报警服务台")}
_USER_COLUMNS = "id, username, display_name, phone, email"


@dataclass(frozen=True)
class Resolved:
    """The recipients of one step and what was missing (`no_contacts`, `no_community_worker`...)."""

    recipients: list[Recipient]
    notes: list[str] = field(default_factory=list)


def ancestors(region_path: str) -> list[str]:
    """The region and its parents, nearest first: community, district, city."""
    parts = region_path.split("/")
    return ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]


def _user(kind: str, row: tuple[Any, ...]) -> Recipient:
    uid, username, display_name, phone, email = row
    return Recipient(kind=kind, id=f"user-{uid}", name=display_name or username, phone=phone, email=email)


async def _users(conn: AsyncConnection[Any], kind: str, sql: str, params: tuple[Any, ...]) -> list[Recipient]:
    rows = await (await conn.execute(sql, params)).fetchall()
    return [_user(kind, r) for r in rows]


async def family(conn: AsyncConnection[Any], resident_id: str) -> list[Recipient]:
    """The resident's contacts in `position` order; a contact's webhook URL becomes its address."""
    rows = await (await conn.execute(
        "SELECT position, name, phone, email, webhook_url FROM contacts WHERE resident_id = %s ORDER BY position",
        (resident_id,),
    )).fetchall()
    return [Recipient(kind="family", id=f"contact-{resident_id}-{pos}", name=name, phone=phone, email=email,
                      address=hook) for pos, name, phone, email, hook in rows]


async def community_worker(conn: AsyncConnection[Any], resident_id: str, region_path: str) -> list[Recipient]:
    """The resident's own community worker, else every community worker scoped to the community."""
    own = await _users(
        conn, "community_worker",
        f"SELECT {_USER_COLUMNS} FROM users WHERE NOT disabled AND id ="  # noqa: S608 - constant column list
        " (SELECT community_worker_id FROM residents WHERE id = %s)",
        (resident_id,),
    )
    if own:
        return own
    return await _users(
        conn, "community_worker",
        f"SELECT {_USER_COLUMNS} FROM users WHERE NOT disabled AND role = 'community_worker'"  # noqa: S608
        " AND scope_path = %s ORDER BY id",
        (region_path,),
    )


async def duty_officer(conn: AsyncConnection[Any], region_path: str) -> list[Recipient]:
    """Operators of the nearest station: scoped to the community, else its district, else its city."""
    for path in ancestors(region_path):
        found = await _users(
            conn, "duty_officer",
            f"SELECT {_USER_COLUMNS} FROM users WHERE NOT disabled AND role = 'operator'"  # noqa: S608
            " AND scope_path = %s ORDER BY id",
            (path,),
        )
        if found:
            return found
    return []


async def operators(conn: AsyncConnection[Any], region_path: str) -> list[Recipient]:
    """Every operator who can see the resident: scoped to the community or an ancestor, or platform-wide."""
    return await _users(
        conn, "operator",
        f"SELECT {_USER_COLUMNS} FROM users WHERE NOT disabled AND role = 'operator'"  # noqa: S608
        " AND (scope_path IS NULL OR scope_path = ANY(%s)) ORDER BY id",
        (ancestors(region_path),),
    )


def call_centre(phone: str | None) -> Recipient:
    """The platform's call centre (its console is the live feed; `phone` for voice channels)."""
    return Recipient(kind="call_centre", id="call-centre", name="呼叫中心", phone=phone)


def emergency(kind: str) -> Recipient:
    """120 or 110; the telephony gateway dials the service number."""
    number, name = EMERGENCY_NAMES[kind]
    return Recipient(kind=kind, id=number, name=name)


async def resolve(conn: AsyncConnection[Any], kinds: Iterable[str], resident_id: str, region_path: str,
                  call_centre_phone: str | None = None) -> Resolved:
    """The people behind each kind, in order, without duplicates.

    A resident without contacts gets the operators in place of family, and the note `no_contacts`.
    """
    out: list[Recipient] = []
    notes: list[str] = []
    for kind in kinds:
        found: list[Recipient]
        if kind == "family":
            found = await family(conn, resident_id)
            if not found:
                notes.append("no_contacts")
                found = await operators(conn, region_path)
        elif kind == "community_worker":
            found = await community_worker(conn, resident_id, region_path)
        elif kind == "duty_officer":
            found = await duty_officer(conn, region_path)
        elif kind == "operator":
            found = await operators(conn, region_path)
        elif kind == "call_centre":
            found = [call_centre(call_centre_phone)]
        elif kind in EMERGENCY_NAMES:
            found = [emergency(kind)]
        else:  # policies are validated at start-up; this is a programming error
            raise ValueError(f"unknown recipient kind {kind!r}")
        if not found and kind != "family":
            notes.append(f"no_{kind}")
        out.extend(found)
    unique: dict[tuple[str, str], Recipient] = {}
    seen_people: set[str] = set()
    for r in out:
        # One person reached once per step, even when they hold two roles (worker and operator).
        if r.id.startswith("user-") and r.id in seen_people:
            continue
        seen_people.add(r.id)
        unique.setdefault((r.kind, r.id), r)
    return Resolved(list(unique.values()), notes)
