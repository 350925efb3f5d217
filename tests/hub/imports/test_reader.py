"""Reading rosters: zh, en or bilingual headers, GB18030 CSV from a Chinese Excel, clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.imports.columns import COLUMNS, template_csv, template_xlsx
from hub.imports.errors import ImportFileError
from hub.imports.reader import open_roster


def test_gb18030_csv_with_chinese_headers(tmp_path: Path) -> None:
    path = tmp_path / "名册.csv"
    path.write_bytes("老人编号,姓名,户编号,社区\nR1,张秀英,H1,sz/futian/lianhua\n\n".encode("gb18030"))
    roster = open_roster(path)
    assert list(roster.rows) == [(2, {"resident_id": "R1", "name": "张秀英", "household_id": "H1",
                                      "community": "sz/futian/lianhua"})]


def test_templates_read_back_as_their_example_row(tmp_path: Path) -> None:
    for name, body in (("t.csv", template_csv()), ("t.xlsx", template_xlsx()), ("en.csv", template_csv("en"))):
        path = tmp_path / name
        path.write_bytes(body)
        ((row_no, cells),) = list(open_roster(path).rows)
        assert row_no == 2
        assert cells["resident_id"] == "R000001" and cells["birth_year"] == "1941"
        assert set(cells) == {c.key for c in COLUMNS}


@pytest.mark.parametrize(("name", "body", "message"), [
    ("r.csv", b"Name,Community\nx,y\n", "required columns missing"),
    ("r.csv", b"Resident ID,Name,Household ID,Community,Shoe size\n", "unknown columns: Shoe size"),
    ("r.csv", b"", "empty"),
    ("r.xlsx", b"not a zip", "not a readable XLSX"),
    ("r.pdf", b"%PDF", "unsupported file type .pdf"),
])
def test_bad_files_are_refused_with_a_reason(tmp_path: Path, name: str, body: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(body)
    with pytest.raises(ImportFileError, match=message):
        open_roster(path)
