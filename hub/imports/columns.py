"""The roster's columns: one row per elder, with their household, up to three contacts and one device."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

CONTACTS = 3


@dataclass(frozen=True)
class Column:
    """One column of the roster: its key, its Chinese and English headers, and an example value."""

    key: str
    zh: str
    en: str
    required: bool = False
    example: str = ""


def _contact_columns(n: int) -> list[Column]:
    first = n == 1
    return [
        Column(f"contact{n}_name", f"联系人{n}姓名", f"Contact {n} name", example="李明" if first else ""),
        Column(f"contact{n}_relation", f"联系人{n}关系", f"Contact {n} relation", example="son" if first else ""),
        Column(f"contact{n}_phone", f"联系人{n}电话", f"Contact {n} phone", example="13800000001" if first else ""),
    ]


COLUMNS: tuple[Column, ...] = (
    Column("resident_id", "老人编号", "Resident ID", True, "R000001"),
    Column("name", "姓名", "Name", True, "张秀英"),
    Column("birth_year", "出生年份", "Birth year", False, "1941"),
    Column("gender", "性别", "Gender", False, "female"),
    Column("phone", "电话", "Phone", False, "13900000001"),
    Column("household_id", "户编号", "Household ID", True, "H000001"),
    Column("community", "社区", "Community", True, "sz/futian/lianhua"),
    Column("address", "地址", "Address", False, "莲花路1号2栋301"),
    Column("lat", "纬度", "Latitude", False, "22.5431"),
    Column("lon", "经度", "Longitude", False, "114.0579"),
    Column("medical_notes", "病历备注", "Medical notes", False, "高血压"),
    Column("risk_flags", "风险标记", "Risk flags", False, "living_alone;heart_condition"),
    *[c for n in range(1, CONTACTS + 1) for c in _contact_columns(n)],
    Column("device_id", "设备编号", "Device ID", False, ""),
    Column("device_type", "设备类型", "Device type", False, ""),
    Column("device_room", "设备位置", "Device room", False, ""),
)
BY_KEY = {c.key: c for c in COLUMNS}


def header_map() -> dict[str, str]:
    """Every accepted header (zh, en, key; case and spaces ignored) → column key."""
    found: dict[str, str] = {}
    for c in COLUMNS:
        for name in (c.zh, c.en, c.key):
            found[normalise(name)] = c.key
    return found


def normalise(header: str) -> str:
    """A header as compared: lower-case, without spaces, underscores or a byte-order mark."""
    return header.replace("\ufeff", "").replace(" ", "").replace("_", "").strip().lower()


def headers(lang: str) -> list[str]:
    """The template's header row: both languages ("姓名 Name") or one."""
    if lang == "zh":
        return [c.zh for c in COLUMNS]
    if lang == "en":
        return [c.en for c in COLUMNS]
    return [f"{c.zh} {c.en}" for c in COLUMNS]


def template_csv(lang: str = "both") -> bytes:
    """The template as UTF-8 CSV with a byte-order mark (so Excel opens the Chinese correctly)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headers(lang))
    writer.writerow([c.example for c in COLUMNS])
    return ("\ufeff" + out.getvalue()).encode()


def template_xlsx(lang: str = "both") -> bytes:
    """The template as an XLSX workbook: the header row, one example row, and a sheet explaining the columns."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "roster"
    sheet.append(headers(lang))
    sheet.append([c.example for c in COLUMNS])
    sheet.freeze_panes = "A2"
    notes = book.create_sheet("说明 notes")
    notes.append(["列 column", "必填 required", "说明 notes"])
    for c in COLUMNS:
        notes.append([f"{c.zh} / {c.en}", "是 yes" if c.required else "", _NOTES.get(c.key, "")])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


_NOTES = {
    "resident_id": "平台编号：再次导入时按此更新 / the platform id; a second import updates by it (A-Z a-z 0-9 _ -)",
    "household_id": "同户老人填相同编号 / the same id for elders of one household",
    "community": "社区路径，须已存在且在您的辖区内 / the community's path; it must exist and lie in your scope",
    "risk_flags": "以;分隔，如 living_alone;dementia / separated by ;",
    "device_type": "wristband, watch3g, door, smoke …；填写后将开通设备并生成一次性密码 / provisions the device",
    "birth_year": "1890–2030",
}
