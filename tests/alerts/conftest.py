"""Shared helpers for the escalation tests: a loopback HTTP receiver, alerts raised in the DB, engines on pools."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg_pool import AsyncConnectionPool

from alerts import lifecycle
from alerts.clock import FakeClock
from alerts.engine import Engine, build_config
from alerts.lifecycle import Actor, raise_alert
from alerts.model import ALERT_TYPES, Trigger
from hub.health import Health

SECRET = "0123456789abcdef-test"


@dataclass
class Hooks:
    """A real HTTP server on 127.0.0.1 that records JSON bodies per path; `down` paths answer 503."""

    bodies: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    down: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                hooks.bodies.append((self.path, body))
                status = 503 if self.path in hooks.down else 200
                raw = json.dumps({"id": f"m{len(hooks.bodies)}", "call_id": f"c{len(hooks.bodies)}"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        """Absolute URL of a path on this receiver."""
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def on(self, path: str) -> list[dict[str, Any]]:
        """Bodies received on one path."""
        return [b for p, b in self.bodies if p == path]

    def per_recipient(self, path: str) -> Counter[tuple[str, int]]:
        """How many requests each (recipient id, step) got on a path."""
        return Counter((b["recipient"]["id"], b["step"]) for b in self.on(path))

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    """A started loopback receiver."""
    server = Hooks()
    yield server
    server.close()


def fast(extra: dict[str, Any]) -> dict[str, Any]:
    """Channel config with one quick attempt, so failure tests do not wait for backoff."""
    return {"max_attempts": 1, "timeout_s": 2, "deadline_s": 2, **extra}


def channels_doc(hooks: Hooks) -> dict[str, Any]:
    """Family, staff and emergency webhooks on the loopback receiver."""
    return {
        "channels": [
            fast({"type": "webhook", "name": "family-app", "url": hooks.url("/family")}),
            fast({"type": "webhook", "name": "family-backup", "url": hooks.url("/family-backup")}),
            fast({"type": "webhook", "name": "staff-app", "url": hooks.url("/staff")}),
            fast({"type": "emergency", "name": "gateway", "url": hooks.url("/emergency"), "secret": SECRET}),
        ],
        "routes": {
            "family": ["family-app", "family-backup"],
            "community_worker": ["staff-app"],
            "duty_officer": ["staff-app"],
            "call_centre": ["staff-app"],
            "operator": ["staff-app"],
            "emergency_120": ["gateway", "live"],
            "emergency_110": ["gateway", "live"],
        },
    }


def write_yaml(path: Path, doc: dict[str, Any]) -> Path:
    """Write a YAML file and return its path."""
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


async def raise_trigger(db_url: str, resident_id: str = "R1", alert_type: str = "sos",
                        details: dict[str, Any] | None = None, device: str | None = None,
                        location: dict[str, Any] | None = None) -> int:
    """Raise an alert the way the ingestion writer does; returns its id."""
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        row = await (await conn.execute(
            "SELECT h.id, h.region_path FROM residents r JOIN households h ON h.id = r.household_id WHERE r.id = %s",
            (resident_id,))).fetchone()
        assert row is not None
        trigger = Trigger(type=alert_type, severity=ALERT_TYPES[alert_type], ts=datetime.now(UTC),
                          resident_id=resident_id, household_id=row[0], region_path=row[1], source_device=device,
                          location=location, details=details or {})
        alert_id, created = await raise_alert(conn, trigger)
        assert created
        return alert_id


async def timeline(db_url: str, alert_id: int) -> list[tuple[str, dict[str, Any]]]:
    """(kind, details) of every timeline entry, in order."""
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        rows = await (await conn.execute(
            "SELECT kind, details FROM alert_events WHERE alert_id = %s ORDER BY id", (alert_id,))).fetchall()
    return [(k, d) for k, d in rows]


def kinds(entries: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Just the kinds."""
    return [k for k, _ in entries]


def notified(entries: list[tuple[str, dict[str, Any]]], ok: bool = True) -> list[tuple[int, str, str]]:
    """(step, recipient kind, channel) of delivered (or failed) notifications."""
    return [(d["step"], d["recipient_kind"], d["channel"]) for k, d in entries
            if k == "notification" and (d["result"] == "ok") == ok]


async def acknowledge(db_url: str, alert_id: int) -> None:
    """What POST /api/alerts/{id}/ack does to the ladder."""
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await lifecycle.acknowledge(conn, alert_id, Actor(role="operator", name="test"))


async def add_user(db_url: str, username: str, role: str, scope: str | None) -> int:
    """A staff user the engine can notify; no password hash (argon2 is slow and nobody logs in)."""
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        row = await (await conn.execute(
            "INSERT INTO users (username, password_hash, role, scope_path, display_name, phone)"
            " VALUES (%s, '!', %s, %s, %s, '13900000000') RETURNING id",
            (username, role, scope, username.title()))).fetchone()
        assert row is not None
        return int(row[0])


@dataclass
class Engines:
    """Makes engines on their own pools against the test database; closes them all afterwards."""

    db_url: str
    tmp: Path
    pools: list[AsyncConnectionPool[Any]] = field(default_factory=list)
    engines: list[Engine] = field(default_factory=list)

    async def make(self, clock: FakeClock, channels: dict[str, Any] | None = None,
                   policies: dict[str, Any] | None = None, **kwargs: Any) -> Engine:
        """An engine with its own pool, configured from (optional) channels and policy documents."""
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(self.db_url, min_size=1, max_size=4, open=False)
        await pool.open(wait=True)
        self.pools.append(pool)
        n = len(self.pools)
        config = build_config(
            pool,
            channels_file=write_yaml(self.tmp / f"channels{n}.yaml", channels) if channels else None,
            policy_file=write_yaml(self.tmp / f"policies{n}.yaml", policies) if policies else None,
            **kwargs,
        )
        engine = Engine(pool, Health(), clock, config)
        self.engines.append(engine)
        return engine

    async def close(self) -> None:
        """Close channels and pools."""
        for engine in self.engines:
            await engine.aclose()
        for pool in self.pools:
            await pool.close()


@pytest.fixture
async def engines(db_url: str, tmp_path: Path) -> AsyncIterator[Engines]:
    """Engine factory for one test."""
    made = Engines(db_url, tmp_path)
    yield made
    await made.close()


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock starting at the wall-clock time."""
    return FakeClock()


Factory = Callable[..., Any]
