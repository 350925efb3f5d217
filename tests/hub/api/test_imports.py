"""Roster imports over HTTP: template, upload, progress, every bad row, credentials shown once."""

from __future__ import annotations

import asyncio
import io

import httpx
import pytest

from tests.hub.api.conftest import Scene

pytestmark = pytest.mark.anyio

CSV = ("Resident ID,Name,Birth year,Household ID,Community,Device ID,Device type\n"
       "IMP-1,甲,1940,IMP-H1,sz/futian/lianhua,IMP-D1,wristband\n"
       "IMP-2,乙,17xx,IMP-H2,sz/futian/lianhua,,\n"
       "IMP-3,丙,1942,IMP-H3,sz/nanshan/shekou,,\n")


async def _run(http: httpx.AsyncClient, dry_run: bool) -> dict:
    res = await http.post("/api/imports", files={"file": ("名册.csv", CSV.encode())},
                          data={"dry_run": "true" if dry_run else "false"})
    assert res.status_code == 202, res.text
    job = res.json()
    for _ in range(200):
        job = (await http.get(f"/api/imports/{job['id']}")).json()
        if job["state"] in {"done", "failed"}:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError("the import did not finish")


async def test_upload_dry_run_then_import(scene: Scene) -> None:
    async with httpx.AsyncClient(base_url=scene.base, headers=scene.headers["operator"], timeout=20) as http:
        template = await http.get("/api/imports/template.xlsx")
        assert template.status_code == 200
        from openpyxl import load_workbook

        header = [c.value for c in load_workbook(io.BytesIO(template.content)).active[1]]
        assert "老人编号 Resident ID" in header and "联系人1电话 Contact 1 phone" in header

        dry = await _run(http, dry_run=True)
        # Row 3 has a bad year; row 4 is in a district the operator does not cover.
        assert dry["state"] == "done" and dry["dry_run"] and dry["error_count"] == 2
        assert [(e["row"], e["column"]) for e in dry["errors"]] == [(3, "birth_year"), (4, "community")]
        assert (await http.get("/api/residents/IMP-1")).status_code == 404
        assert not dry["credentials_ready"]

        done = await _run(http, dry_run=False)
        assert done["counts"]["residents_created"] == 1 and done["counts"]["devices_created"] == 1
        assert (await http.get("/api/residents/IMP-1")).json()["name"] == "甲"
        assert done["credentials_ready"]
        creds = await http.get(f"/api/imports/{done['id']}/credentials")
        assert creds.status_code == 200 and creds.text.startswith("device_id,mqtt_username,mqtt_password")
        assert "IMP-D1" in creds.text
        again = await http.get(f"/api/imports/{done['id']}/credentials")
        assert again.status_code == 410  # shown once

        second = await _run(http, dry_run=False)
        assert second["counts"]["residents_unchanged"] == 1 and second["counts"]["devices_unchanged"] == 1
        assert not second["credentials_ready"]

    async with httpx.AsyncClient(base_url=scene.base, headers=scene.headers["admin"]) as http:
        audit = (await http.get("/api/audit", params={"action": "import.roster"})).json()["items"]
    assert len(audit) == 2


async def test_wrong_file_type_is_refused(scene: Scene) -> None:
    async with httpx.AsyncClient(base_url=scene.base, headers=scene.headers["admin"]) as http:
        res = await http.post("/api/imports", files={"file": ("roster.pdf", b"%PDF")})
    assert res.status_code == 400 and ".csv or .xlsx" in res.json()["detail"]
