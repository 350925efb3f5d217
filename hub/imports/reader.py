"""Reads a roster file row by row (CSV or XLSX), mapping zh or en headers to column keys."""

from __future__ import annotations

import codecs
import csv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.imports.columns import BY_KEY, COLUMNS, header_map, normalise
from hub.imports.errors import ImportFileError

RawRow = tuple[int, dict[str, str]]
"""A row number as the spreadsheet shows it (the header is row 1) and its cells by column key."""


@dataclass
class Roster:
    """An opened roster: its column keys, an estimate of its data rows, and its rows (read once)."""

    keys: list[str | None]
    total: int | None
    rows: Iterator[RawRow]


def _keys(header: list[Any]) -> list[str | None]:
    known = header_map()
    keys: list[str | None] = []
    unknown: list[str] = []
    for cell in header:
        name = "" if cell is None else str(cell)
        # A bilingual template header ("姓名 Name") matches on either half.
        key = known.get(normalise(name)) or next(
            (known[normalise(part)] for part in name.split() if normalise(part) in known), None)
        if key is None and name.strip():
            unknown.append(name.strip())
        keys.append(key)
    missing = [BY_KEY[c.key] for c in COLUMNS if c.required and c.key not in keys]
    if missing:
        raise ImportFileError("required columns missing: " + ", ".join(f"{c.zh} / {c.en}" for c in missing))
    if unknown:
        raise ImportFileError("unknown columns: " + ", ".join(unknown[:10]))
    return keys


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel stores 1941 and 13800000001 as floats
    return str(value).strip()


def _rows(keys: list[str | None], source: Iterator[Any], first: int) -> Iterator[RawRow]:
    for row_no, cells in enumerate(source, start=first):
        values = [_cell(v) for v in cells]
        if not any(values):
            continue
        yield row_no, {k: v for k, v in zip(keys, values, strict=False) if k is not None}


def _encoding(path: Path) -> tuple[str, int]:
    """The file's text encoding and its line count, found in one streaming pass."""
    # Civil-affairs spreadsheets saved by a Chinese Excel are GB18030, not UTF-8.
    for encoding in ("utf-8-sig", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)()
        lines = 0
        try:
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    decoder.decode(chunk)
                    lines += chunk.count(b"\n")
                decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return encoding, lines
    raise ImportFileError("the CSV file is neither UTF-8 nor GB18030 text")


def open_csv(path: Path) -> Roster:
    """A CSV roster, streamed from disk."""
    encoding, lines = _encoding(path)
    f = path.open(encoding=encoding, newline="")
    reader = csv.reader(f)
    header = next(reader, None)
    if header is None:
        f.close()
        raise ImportFileError("the file is empty")
    try:
        keys = _keys(header)
    except ImportFileError:
        f.close()
        raise

    def rows() -> Iterator[RawRow]:
        try:
            yield from _rows(keys, reader, 2)
        finally:
            f.close()

    return Roster(keys, max(lines - 1, 0), rows())


def open_xlsx(path: Path) -> Roster:
    """An XLSX roster read in streaming mode (the first sheet; memory stays bounded)."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as err:
        raise ImportFileError(f"not a readable XLSX workbook: {type(err).__name__}") from err
    sheet = book.worksheets[0]
    source = sheet.iter_rows(values_only=True)
    header = next(source, None)
    if header is None:
        book.close()
        raise ImportFileError("the first sheet is empty")
    keys = _keys(list(header))
    total = (sheet.max_row - 1) if sheet.max_row else None

    def rows() -> Iterator[RawRow]:
        try:
            yield from _rows(keys, source, 2)
        finally:
            book.close()

    return Roster(keys, total, rows())


def open_roster(path: Path, filename: str | None = None) -> Roster:
    """Open a roster by its file name's suffix (.csv or .xlsx)."""
    suffix = Path(filename or path.name).suffix.lower()
    if suffix == ".csv":
        return open_csv(path)
    if suffix == ".xlsx":
        return open_xlsx(path)
    raise ImportFileError(f"unsupported file type {suffix or '(none)'}: use .csv or .xlsx")
