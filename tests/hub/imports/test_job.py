"""A roster import against a real database: bad rows named, idempotent upsert, dry run writes nothing."""

from __future__ import annotations

import csv
from pathlib import Path

import psycopg
import pytest

from devices.credentials import verify_password
from hub.imports.columns import COLUMNS
from hub.imports.job import create_job, run_import

pytestmark = pytest.mark.anyio

EN = {c.key: c.en for c in COLUMNS}


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([c.en for c in COLUMNS])
        for r in rows:
            w.writerow([r.get(c.key, "") for c in COLUMNS])
    return path


def _elder(i: int, **extra: str) -> dict[str, str]:
    return {"resident_id": f"R{i:04d}", "name": f"老人{i}", "birth_year": "1940", "household_id": f"H{i:04d}",
            "community": "sz/futian/lianhua", "address": f"莲花路{i}号", "lat": "22.55", "lon": "114.05",
            "risk_flags": "living_alone", "contact1_name": "儿子", "contact1_phone": "13800000001", **extra}


async def _import(settings, path: Path, dry_run: bool = False, store=None, out=None):
    async with await psycopg.AsyncConnection.connect(settings.db_url, autocommit=True) as conn:
        job = await create_job(conn, None, path.name, dry_run)
    return await run_import(settings.db_url, job, path, path.name, None, dry_run, store, out)


async def _count(db_url: str, table: str) -> int:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        row = await (await conn.execute(f"SELECT count(*) FROM {table}")).fetchone()
        return int(row[0])


async def test_import_twice_changes_nothing_the_second_time(settings, world, services, tmp_path) -> None:
    await world.region_tree()
    rows = [_elder(i) for i in range(1, 6)]
    rows[0] |= {"device_id": "IMPWB1", "device_type": "wristband"}
    path = _write(tmp_path / "roster.csv", rows)
    creds = tmp_path / "creds.csv"
    first = await _import(settings, path, store=services.store, out=creds)
    assert first.errors == 0
    assert first.counts["residents_created"] == 5 and first.counts["households_created"] == 5
    assert first.counts["devices_created"] == 1
    # The device got a broker account whose password is in the credentials file only.
    (line,) = list(csv.DictReader(creds.open()))
    assert line["device_id"] == "IMPWB1"
    assert verify_password(line["mqtt_password"], services.store.hashed("IMPWB1"))

    async with await psycopg.AsyncConnection.connect(settings.db_url) as conn:
        before = await (await conn.execute("SELECT xmin::text FROM residents ORDER BY id")).fetchall()
    second = await _import(settings, path, store=services.store, out=tmp_path / "creds2.csv")
    assert second.counts["residents_unchanged"] == 5 and second.counts.get("residents_updated", 0) == 0
    assert second.counts["households_unchanged"] == 5 and second.counts["devices_unchanged"] == 1
    assert second.counts["contact_lists_unchanged"] == 5
    assert second.credentials_file is None and not (tmp_path / "creds2.csv").exists()
    async with await psycopg.AsyncConnection.connect(settings.db_url) as conn:
        after = await (await conn.execute("SELECT xmin::text FROM residents ORDER BY id")).fetchall()
    assert before == after  # no row was rewritten

    rows[1]["name"] = "改名"
    third = await _import(settings, _write(tmp_path / "roster2.csv", rows), store=services.store,
                          out=tmp_path / "creds3.csv")
    assert third.counts["residents_updated"] == 1 and third.counts["residents_unchanged"] == 4


async def test_dry_run_reports_every_bad_row_and_writes_nothing(settings, world, tmp_path) -> None:
    await world.region_tree()
    rows = [_elder(1), _elder(2, birth_year="19x0"), _elder(3, community="sz/nowhere/x"),
            _elder(4, phone="call me", device_id="D4"), _elder(1), _elder(6, device_type="toaster", device_id="D6")]
    path = _write(tmp_path / "bad.csv", rows)
    outcome = await _import(settings, path, dry_run=True)
    async with await psycopg.AsyncConnection.connect(settings.db_url) as conn:
        errors = await (await conn.execute("SELECT row_no, col, reason FROM import_errors WHERE job_id = %s"
                                           " ORDER BY row_no, col", (outcome.job_id,))).fetchall()
    by_row = {(r, c) for r, c, _ in errors}
    assert (3, "birth_year") in by_row
    assert (4, "community") in by_row
    assert {(5, "phone"), (5, "device_type")} <= by_row
    assert (6, "resident_id") in by_row  # R0001 repeats row 2
    assert (7, "device_type") in by_row
    assert outcome.counts["residents_created"] == 1  # row 2 would be created...
    assert await _count(settings.db_url, "residents") == 0  # ...but a dry run writes nothing
    assert await _count(settings.db_url, "households") == 0


async def test_scoped_operator_cannot_import_into_another_district(settings, world, tmp_path) -> None:
    from hub.users import User

    await world.region_tree()
    path = _write(tmp_path / "r.csv", [_elder(1), _elder(2, community="sz/nanshan/shekou")])
    async with await psycopg.AsyncConnection.connect(settings.db_url, autocommit=True) as conn:
        job = await create_job(conn, None, "r.csv", False)
    op = User(id=1, username="op", role="operator", scope_path="sz/futian", resident_id=None)
    await world.user("op", "operator", scope_path="sz/futian")
    outcome = await run_import(settings.db_url, job, path, "r.csv", op, False)
    assert outcome.errors == 1 and outcome.counts["residents_created"] == 1
    async with await psycopg.AsyncConnection.connect(settings.db_url) as conn:
        (reason,) = await (await conn.execute("SELECT reason FROM import_errors WHERE job_id = %s", (job,))).fetchone()
    assert "scope" in reason


async def test_xlsx_template_with_chinese_headers_imports(settings, world, tmp_path) -> None:
    from openpyxl import Workbook

    await world.region_tree()
    book = Workbook()
    sheet = book.active
    sheet.append([c.zh for c in COLUMNS])
    for i in range(1, 4):
        e = _elder(i)
        sheet.append([int(e[c.key]) if c.key == "birth_year" else e.get(c.key, "") for c in COLUMNS])
    path = tmp_path / "名册.xlsx"
    book.save(path)
    outcome = await _import(settings, path)
    assert outcome.errors == 0 and outcome.counts["residents_created"] == 3
    async with await psycopg.AsyncConnection.connect(settings.db_url) as conn:
        row = await (await conn.execute("SELECT birth_year, risk_flags FROM residents WHERE id = 'R0002'")).fetchone()
    assert row == (1940, ["living_alone"])
