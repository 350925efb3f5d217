"""`python -m hub import FILE [--dry-run]`: progress, counts and bad rows on the terminal."""

from __future__ import annotations

from pathlib import Path

import psycopg

from hub.imports.cli import main


def test_command_line_dry_run_then_import(settings, tmp_path: Path, capsys) -> None:
    with psycopg.connect(settings.db_url) as conn:
        for path, level in (("sz", "city"), ("sz/futian", "district"), ("sz/futian/lianhua", "community")):
            conn.execute("INSERT INTO regions (path, level, name) VALUES (%s, %s, %s)", (path, level, path))
    roster = tmp_path / "roster.csv"
    roster.write_text("Resident ID,Name,Household ID,Community,Phone\n"
                      "R1,张秀英,H1,sz/futian/lianhua,13900000001\n"
                      "R2,李明,H2,sz/futian/lianhua,call me\n", encoding="utf-8")
    assert main(settings, str(roster), True, None) == 1
    out = capsys.readouterr().out
    assert "(dry run, nothing written): 2 rows, 1 errors" in out and "row 3, phone: not a phone number" in out
    assert "张秀英" not in out and "call me" not in out  # no personal data on the terminal, only ids and reasons
    with psycopg.connect(settings.db_url) as conn:
        assert conn.execute("SELECT count(*) FROM residents").fetchone() == (0,)
    roster.write_text("Resident ID,Name,Household ID,Community\nR1,张秀英,H1,sz/futian/lianhua\n", encoding="utf-8")
    assert main(settings, str(roster), False, None) == 0
    assert "residents_created: 1" in capsys.readouterr().out
    with psycopg.connect(settings.db_url) as conn:
        assert conn.execute("SELECT name FROM residents").fetchone() == ("张秀英",)
