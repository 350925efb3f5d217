"""`python -m hub users create-admin`: the first admin, password from stdin, never from the command line."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta

import psycopg
import pytest

from hub.users import AuthError, login


def _cli(db_url: str, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ELDERCARE_DB_URL": db_url}
    return subprocess.run([sys.executable, "-m", "hub", "users", "create-admin", *args], input=stdin, env=env,
                          capture_output=True, text=True, check=False, timeout=120)


def _can_log_in(db_url: str, username: str, password: str) -> bool:
    async def attempt() -> bool:
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            try:
                await login(conn, username, password, timedelta(minutes=1))
            except AuthError:
                return False
            return True
    return asyncio.run(attempt())


def test_create_admin_reads_the_password_from_stdin(db_url: str) -> None:
    proc = _cli(db_url, "first-admin", "--display-name", "Platform admin", stdin="correct horse battery\n")
    assert proc.returncode == 0, proc.stderr
    assert "admin first-admin created" in proc.stdout
    assert "correct horse" not in proc.stdout + proc.stderr
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT role, scope_path, display_name, password_hash FROM users"
                           " WHERE username = 'first-admin'").fetchone()
        audit = conn.execute("SELECT action, details FROM audit_log").fetchall()
    assert row is not None and row[:3] == ("admin", None, "Platform admin")
    assert row[3].startswith("$argon2id$")
    assert audit == [("user.create", {"role": "admin", "via": "cli"})]
    assert _can_log_in(db_url, "first-admin", "correct horse battery")


def test_an_existing_account_changes_only_with_update(db_url: str) -> None:
    assert _cli(db_url, "boss", stdin="first-password\n").returncode == 0
    again = _cli(db_url, "boss", stdin="second-password\n")
    assert again.returncode == 2
    assert "exists; add --update" in again.stderr
    assert _can_log_in(db_url, "boss", "first-password")
    assert _cli(db_url, "boss", "--update", stdin="second-password\n").returncode == 0
    assert _can_log_in(db_url, "boss", "second-password")
    assert not _can_log_in(db_url, "boss", "first-password")


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["x"], "long-enough-pw\n", "must be 2-60 letters"),
    (["ok-name"], "short\n", "8 to 200 characters"),
    (["ok-name"], "", "8 to 200 characters"),
    (["ok-name", "--scope", "nowhere/at/all"], "long-enough-pw\n", "no region nowhere/at/all"),
])
def test_bad_input_is_refused_clearly(db_url: str, args: list[str], stdin: str, message: str) -> None:
    proc = _cli(db_url, *args, stdin=stdin)
    assert proc.returncode == 2
    assert message in proc.stderr
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)


def test_the_password_is_never_an_argument() -> None:
    proc = subprocess.run([sys.executable, "-m", "hub", "users", "create-admin", "root", "--password", "x"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "unrecognized arguments: --password" in proc.stderr
