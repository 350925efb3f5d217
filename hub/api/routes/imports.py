"""Roster imports: the template, an upload that runs in the background, its progress and every bad row."""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile, status
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel

from hub.api.deps import ConnDep, CurrentUser, HubDep, require_roles
from hub.api.routes.devices import credential_store
from hub.api.schemas import Limit, Offset, bad_request, fetch_all, fetch_one, not_found
from hub.imports.columns import template_csv, template_xlsx
from hub.imports.job import create_job, run_import
from hub.users import User

router = APIRouter(prefix="/api/imports", tags=["imports"])
IMPORTERS = require_roles("admin", "operator")
MAX_BYTES = 200 * 1024 * 1024
log = logging.getLogger(__name__)
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class RowProblem(BaseModel):
    """A bad row: its number as the spreadsheet shows it, the column and the reason."""

    row: int
    column: str
    reason: str


class ImportJob(BaseModel):
    """An import's state and progress; `errors` is one page of its bad rows (all of them are kept)."""

    id: int
    filename: str
    dry_run: bool
    state: str
    total_rows: int | None
    processed_rows: int
    error_count: int
    counts: dict[str, int]
    failure: str | None
    created_at: datetime
    finished_at: datetime | None
    credentials_ready: bool
    errors: list[RowProblem]
    next_error_offset: int | None


def _take_file(path: Path) -> bytes:
    """Move aside, read, delete: of two downloads at once only one gets the passwords (the other's rename fails)."""
    taken = path.with_name(f"{path.name}.{secrets.token_hex(8)}")
    path.rename(taken)
    try:
        return taken.read_bytes()
    finally:
        taken.unlink()


def _workdir(hub: Any) -> Path:
    path = Path(hub.settings.data_dir) / "imports"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _credentials_path(hub: Any, job_id: int) -> Path:
    return _workdir(hub) / f"{job_id}.credentials.csv"


@router.get("/template.{fmt}", dependencies=[IMPORTERS], summary="The roster template (zh and en headers)",
            response_class=Response, responses={200: {"content": {"text/csv": {}, _XLSX: {}}}})
async def template(fmt: Literal["csv", "xlsx"],
                   lang: Annotated[Literal["both", "zh", "en"], Query()] = "both") -> Response:
    """One header row (both languages by default) and one example row; XLSX adds a sheet explaining the columns."""
    body, media = (template_csv(lang), "text/csv; charset=utf-8") if fmt == "csv" else (template_xlsx(lang), _XLSX)
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="roster-template.{fmt}"'})


_COLS = """j.id, j.filename, j.dry_run, j.state, j.total_rows, j.processed_rows, j.error_count, j.counts, j.failure,
  j.created_at, j.finished_at, j.created_by"""


def _visible(user: User) -> tuple[str, dict[str, Any]]:
    # An import belongs to whoever ran it; platform-wide admins see every import.
    if user.role == "admin" and user.scope_path is None:
        return "TRUE", {}
    return "j.created_by = %(me)s", {"me": user.id}


async def _load(conn: ConnDep, user: User, job_id: int) -> dict[str, Any]:
    where, params = _visible(user)
    sql = f"SELECT {_COLS} FROM import_jobs j WHERE j.id = %(id)s AND {where}"  # noqa: S608 - fragments are ours
    row = await fetch_one(conn, sql, {"id": job_id, **params})
    if row is None:
        raise not_found("import", job_id)
    return row


@router.post("", response_model=ImportJob, status_code=status.HTTP_202_ACCEPTED, dependencies=[IMPORTERS],
             summary="Upload a roster (CSV or XLSX); it is imported in the background")
async def start_import(conn: ConnDep, user: CurrentUser, hub: HubDep, request: Request,
                       file: Annotated[UploadFile, File(description=".csv or .xlsx, at most 200 MB")],
                       dry_run: Annotated[bool, Form(description="check and report only")] = False) -> ImportJob:
    """Poll `GET /api/imports/{id}` for progress. Rows outside your scope are refused, not written."""
    name = Path(file.filename or "roster").name
    suffix = Path(name).suffix.lower()
    if suffix not in {".csv", ".xlsx"}:
        raise bad_request(f"unsupported file type {suffix or '(none)'}: use .csv or .xlsx")
    job_id = await create_job(conn, user, name, dry_run)
    await conn.commit()
    path = _workdir(hub) / f"{job_id}{suffix}"
    size = 0
    with path.open("wb") as out:
        while chunk := await file.read(1 << 20):
            size += len(chunk)
            if size > MAX_BYTES:
                out.close()
                path.unlink(missing_ok=True)
                await conn.execute("UPDATE import_jobs SET state = 'failed', failure = 'file too large',"
                                   " finished_at = now() WHERE id = %s", (job_id,))
                raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "the file is larger than 200 MB")
            out.write(chunk)
    # Kept referenced until done, or the event loop may collect the task mid-import.
    if not hasattr(request.app.state, "import_tasks"):
        request.app.state.import_tasks = set()
    tasks: set[asyncio.Task[Any]] = request.app.state.import_tasks
    task = asyncio.create_task(_run(hub, job_id, path, name, user, dry_run), name=f"import-{job_id}")
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return await get_import(job_id, conn, user, hub)


async def _run(hub: Any, job_id: int, path: Path, name: str, user: User, dry_run: bool) -> None:
    def rebind(bindings: list[Any]) -> None:
        for b in bindings:
            hub.bindings.put(b)

    try:
        await run_import(hub.db_url, job_id, path, name, user, dry_run, credential_store(hub),
                         _credentials_path(hub, job_id), on_bindings=rebind)
    except Exception:  # noqa: BLE001 - recorded on the job row; a background task has no caller to raise to
        log.warning("import %s failed", job_id)
    finally:
        await asyncio.to_thread(path.unlink, True)


@router.get("", response_model=list[ImportJob], dependencies=[IMPORTERS], summary="Recent imports (yours)")
async def list_imports(conn: ConnDep, user: CurrentUser, hub: HubDep, limit: Limit = 20) -> list[ImportJob]:
    """Newest first, without their bad rows (read one import for those)."""
    where, params = _visible(user)
    rows = await fetch_all(conn, f"SELECT j.id FROM import_jobs j WHERE {where} ORDER BY j.id DESC"  # noqa: S608
                           " LIMIT %(limit)s", {**params, "limit": limit})
    return [await get_import(r["id"], conn, user, hub, error_limit=1) for r in rows]


@router.get("/{job_id}", response_model=ImportJob, dependencies=[IMPORTERS], summary="An import's progress")
async def get_import(job_id: int, conn: ConnDep, user: CurrentUser, hub: HubDep, error_offset: Offset = 0,
                     error_limit: Limit = 200) -> ImportJob:
    """Bad rows in row order, a page at a time (`error_offset`, `error_limit`)."""
    row = await _load(conn, user, job_id)
    errors = await fetch_all(conn, "SELECT row_no AS row, col AS column, reason FROM import_errors"
                             " WHERE job_id = %s ORDER BY row_no, col LIMIT %s OFFSET %s",
                             (job_id, error_limit + 1, error_offset))
    more = len(errors) > error_limit
    row.pop("created_by")
    return ImportJob(**row, credentials_ready=_credentials_path(hub, job_id).exists(),
                     errors=[RowProblem(**e) for e in errors[:error_limit]],
                     next_error_offset=error_offset + error_limit if more else None)


@router.get("/{job_id}/credentials", dependencies=[IMPORTERS], response_class=FileResponse,
            summary="New devices' broker passwords, downloadable once by whoever ran the import",
            responses={200: {"content": {"text/csv": {}}}, 410: {"description": "already downloaded"}})
async def credentials(job_id: int, conn: ConnDep, user: CurrentUser, hub: HubDep) -> Response:
    """The file is deleted as it is sent: like a provisioning response, it is shown once."""
    row = await _load(conn, user, job_id)
    if row["created_by"] != user.id:
        raise not_found("import", job_id)
    try:
        body = await asyncio.to_thread(_take_file, _credentials_path(hub, job_id))
    except FileNotFoundError:
        raise HTTPException(status.HTTP_410_GONE,
                            "no passwords to show: none were issued, or already downloaded") from None
    await conn.execute("INSERT INTO audit_log (user_id, action, target) VALUES (%s, 'import.credentials', %s)",
                       (user.id, f"import:{job_id}"))
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="import-{job_id}-credentials.csv"'})
