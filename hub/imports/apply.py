"""Writes checked roster rows in one transaction per chunk: an upsert keyed by the platform's ids."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from alerts.model import Binding
from devices.provisioning import provision
from hub.imports.rows import RosterRow, RowError
from hub.users import User, region_within


def covers(user: User | None, path: str) -> bool:
    """The same rule as hub.users.scope_filter, for paths already in hand (None: the command line, everything)."""
    if user is None or user.is_platform_wide:
        return True
    if user.role == "family" or user.scope_path is None:
        return False
    return region_within(path, user.scope_path)


@dataclass
class ChunkResult:
    """What one chunk did: counts per kind and outcome, rows refused, devices needing a broker account."""

    counts: Counter[str] = field(default_factory=Counter)
    errors: list[RowError] = field(default_factory=list)
    new_devices: list[str] = field(default_factory=list)
    bindings: list[Binding] = field(default_factory=list)


def _refuse_duplicates(rows: list[RosterRow], result: ChunkResult) -> list[RosterRow]:
    seen_res: dict[str, int] = {}
    seen_dev: dict[str, int] = {}
    homes: dict[str, RosterRow] = {}
    kept = []
    for r in rows:
        if r.resident_id in seen_res:
            result.errors.append(RowError(r.row, "resident_id", f"repeats row {seen_res[r.resident_id]}"))
            continue
        if r.device and r.device.id in seen_dev:
            result.errors.append(RowError(r.row, "device_id", f"repeats row {seen_dev[r.device.id]}"))
            continue
        first = homes.get(r.household_id)
        if first is not None:
            for key in ("community", "address", "lat", "lon"):
                if getattr(first, key) != getattr(r, key):
                    result.errors.append(RowError(r.row, key, f"differs from row {first.row} of the same household"))
                    break
            else:
                first = None
            if first is not None:
                continue
        seen_res[r.resident_id] = r.row
        if r.device:
            seen_dev[r.device.id] = r.row
        homes.setdefault(r.household_id, r)
        kept.append(r)
    return kept


async def _rows(conn: AsyncConnection[Any], sql: str, params: Any) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    return await (await cur.execute(sql, params)).fetchall()


async def _refuse_out_of_scope(conn: AsyncConnection[Any], user: User | None, rows: list[RosterRow],
                               result: ChunkResult) -> list[RosterRow]:
    communities = {r["path"] for r in await _rows(
        conn, "SELECT path FROM regions WHERE path = ANY(%s) AND level = 'community'",
        (list({r.community for r in rows}),)) if covers(user, r["path"])}
    homes = {r["id"]: r["region_path"] for r in await _rows(
        conn, "SELECT id, region_path FROM households WHERE id = ANY(%s)", (list({r.household_id for r in rows}),))}
    people = {r["id"]: r["region_path"] for r in await _rows(
        conn, "SELECT r.id, h.region_path FROM residents r JOIN households h ON h.id = r.household_id"
        " WHERE r.id = ANY(%s)", ([r.resident_id for r in rows],))}
    gear = {r["id"]: r["region_path"] for r in await _rows(
        conn, "SELECT d.id, h.region_path FROM devices d LEFT JOIN residents r ON r.id = d.resident_id"
        " LEFT JOIN households h ON h.id = COALESCE(d.household_id, r.household_id) WHERE d.id = ANY(%s)",
        ([r.device.id for r in rows if r.device],))}
    kept = []
    for r in rows:
        # Out of scope reads exactly like absent, as in the API.
        if r.community not in communities:
            result.errors.append(RowError(r.row, "community", "no such community in your scope"))
        elif r.household_id in homes and not covers(user, homes[r.household_id]):
            result.errors.append(RowError(r.row, "household_id", "the id is taken outside your scope"))
        elif r.resident_id in people and not covers(user, people[r.resident_id]):
            result.errors.append(RowError(r.row, "resident_id", "the id is taken outside your scope"))
        elif r.device and r.device.id in gear and not covers(user, gear[r.device.id] or ""):
            result.errors.append(RowError(r.row, "device_id", "the id is taken outside your scope"))
        else:
            kept.append(r)
    return kept


def _tally(result: ChunkResult, kind: str, total: int, returned: list[dict[str, Any]]) -> None:
    created = sum(1 for r in returned if r["inserted"])
    result.counts[f"{kind}_created"] += created
    result.counts[f"{kind}_updated"] += len(returned) - created
    result.counts[f"{kind}_unchanged"] += total - len(returned)


async def _households(conn: AsyncConnection[Any], rows: list[RosterRow], result: ChunkResult) -> None:
    homes = {r.household_id: r for r in rows}
    returned = await _rows(
        conn, "INSERT INTO households AS h (id, region_path, address, lat, lon)"
        " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::float8[], %s::float8[])"
        " ON CONFLICT (id) DO UPDATE SET region_path = EXCLUDED.region_path, address = EXCLUDED.address,"
        " lat = EXCLUDED.lat, lon = EXCLUDED.lon"
        " WHERE (h.region_path, h.address, h.lat, h.lon)"
        " IS DISTINCT FROM (EXCLUDED.region_path, EXCLUDED.address, EXCLUDED.lat, EXCLUDED.lon)"
        " RETURNING id, (xmax = 0) AS inserted",
        (list(homes), [r.community for r in homes.values()], [r.address for r in homes.values()],
         [r.lat for r in homes.values()], [r.lon for r in homes.values()]))
    _tally(result, "households", len(homes), returned)


async def _residents(conn: AsyncConnection[Any], rows: list[RosterRow], result: ChunkResult) -> None:
    returned = await _rows(
        conn, "INSERT INTO residents AS r (id, household_id, name, birth_year, gender, phone, medical_notes,"
        " risk_flags) SELECT u.id, u.hid, u.name, u.birth, u.gender, u.phone, u.notes,"
        " COALESCE((SELECT array_agg(f) FROM jsonb_array_elements_text(u.flags) f), '{}')"
        " FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::text[], %s::text[], %s::text[],"
        " %s::jsonb[]) AS u(id, hid, name, birth, gender, phone, notes, flags)"
        " ON CONFLICT (id) DO UPDATE SET household_id = EXCLUDED.household_id, name = EXCLUDED.name,"
        " birth_year = EXCLUDED.birth_year, gender = EXCLUDED.gender, phone = EXCLUDED.phone,"
        " medical_notes = EXCLUDED.medical_notes, risk_flags = EXCLUDED.risk_flags"
        " WHERE (r.household_id, r.name, r.birth_year, r.gender, r.phone, r.medical_notes, r.risk_flags)"
        " IS DISTINCT FROM (EXCLUDED.household_id, EXCLUDED.name, EXCLUDED.birth_year, EXCLUDED.gender,"
        " EXCLUDED.phone, EXCLUDED.medical_notes, EXCLUDED.risk_flags)"
        " RETURNING id, (xmax = 0) AS inserted",
        ([r.resident_id for r in rows], [r.household_id for r in rows], [r.name for r in rows],
         [r.birth_year for r in rows], [r.gender for r in rows], [r.phone for r in rows],
         [r.medical_notes for r in rows], [_json_list(r.risk_flags) for r in rows]))
    _tally(result, "residents", len(rows), returned)


def _json_list(items: list[str]) -> str:
    import json

    return json.dumps(items, ensure_ascii=False)


async def _contacts(conn: AsyncConnection[Any], rows: list[RosterRow], result: ChunkResult) -> None:
    # A row without contacts keeps the contacts already on file; a row with contacts replaces them.
    wanted = {r.resident_id: [(c.name, c.relation, c.phone) for c in r.contacts] for r in rows if r.contacts}
    if not wanted:
        return
    have: dict[str, list[tuple[str, str, str | None]]] = {}
    by_hand: set[str] = set()
    for c in await _rows(conn, "SELECT resident_id, name, relation, phone, email, webhook_url FROM contacts"
                         " WHERE resident_id = ANY(%s) ORDER BY resident_id, position", (list(wanted),)):
        have.setdefault(c["resident_id"], []).append((c["name"], c["relation"], c["phone"]))
        if c["email"] or c["webhook_url"]:
            by_hand.add(c["resident_id"])
    # An email or webhook was entered in the console; a roster cannot express it, so that list is kept.
    result.counts["contact_lists_kept"] += len(by_hand)
    changed = [rid for rid, contacts in wanted.items() if rid not in by_hand and have.get(rid, []) != contacts]
    result.counts["contact_lists_unchanged"] += len(wanted) - len(changed) - len(by_hand)
    if not changed:
        return
    await conn.execute("DELETE FROM contacts WHERE resident_id = ANY(%s)", (changed,))
    ids, positions, names, relations, phones = [], [], [], [], []
    for rid in changed:
        for pos, (name, relation, phone) in enumerate(wanted[rid], start=1):
            ids.append(rid)
            positions.append(pos)
            names.append(name)
            relations.append(relation)
            phones.append(phone)
    await conn.execute("INSERT INTO contacts (resident_id, position, name, relation, phone)"
                       " SELECT * FROM unnest(%s::text[], %s::int[], %s::text[], %s::text[], %s::text[])",
                       (ids, positions, names, relations, phones))
    result.counts["contact_lists_written"] += len(changed)


async def _devices(conn: AsyncConnection[Any], rows: list[RosterRow], result: ChunkResult) -> None:
    wanted = [r for r in rows if r.device]
    if not wanted:
        return
    have = {d["id"]: d for d in await _rows(
        conn, "SELECT id, type, resident_id, household_id, room, status, meta FROM devices WHERE id = ANY(%s)",
        ([r.device.id for r in wanted if r.device],))}
    # Pipeline mode: each provisioning's insert travels with its read-back, one round trip per device.
    async with conn.pipeline():
        for r in wanted:
            await _device(conn, r, have.get(r.device.id) if r.device else None, result)


async def _device(conn: AsyncConnection[Any], r: RosterRow, d: dict[str, Any] | None, result: ChunkResult) -> None:
    assert r.device is not None
    if d is not None and (d["status"], d["type"], d["resident_id"], d["household_id"], d["room"]) == (
            "active", r.device.type, r.resident_id, None, r.device.room):
        result.counts["devices_unchanged"] += 1
        return
    # Through the same provisioning code as the API: one place decides what a bound device is.
    binding = await provision(conn, r.device.id, r.device.type, resident_id=r.resident_id,
                              room=r.device.room, meta=d["meta"] if d else None)
    result.bindings.append(binding)
    if d is None or d["status"] != "active":
        result.counts["devices_created" if d is None else "devices_reactivated"] += 1
        result.new_devices.append(r.device.id)
    else:
        result.counts["devices_moved"] += 1


async def apply_chunk(conn: AsyncConnection[Any], user: User | None, rows: list[RosterRow]) -> ChunkResult:
    """Upsert a chunk inside the caller's transaction; rows outside the user's scope are refused."""
    result = ChunkResult()
    rows = _refuse_duplicates(rows, result)
    if rows:
        rows = await _refuse_out_of_scope(conn, user, rows, result)
    if rows:
        await _households(conn, rows, result)
        await _residents(conn, rows, result)
        await _contacts(conn, rows, result)
        await _devices(conn, rows, result)
    return result
