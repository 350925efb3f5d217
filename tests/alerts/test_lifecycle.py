"""The alert lifecycle: exactly the transition table of docs/alerts.md, retrigger runs, and what each change records."""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from alerts import lifecycle
from alerts.errors import TransitionConflict, TransitionForbidden, TransitionInvalid
from alerts.lifecycle import OWN, RULES, Actor
from alerts.model import Trigger
from hub.users import User
from tests.alerts.conftest import raise_trigger, timeline

pytestmark = pytest.mark.anyio

DOCS = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"
SYSTEM_ONLY = {"raise": lifecycle.raise_alert, "retrigger": lifecycle.raise_alert,
               "cancel_by_checkin": lifecycle.cancel_by_checkin}


def docs_table() -> dict[str, dict[str, str]]:
    """The transition table as docs/alerts.md prints it: transition -> {role: condition}."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("### Who may make each transition", 1)[1]
    rows = section[section.index("\n| transition"):].splitlines()[1:]
    lines = rows[:next(i for i, line in enumerate(rows) if not line.startswith("|"))]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    roles = header[1:]
    table: dict[str, dict[str, str]] = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        name = cells[0].strip("`")
        table[name] = {}
        for role, cell in zip(roles, cells[1:], strict=True):
            if cell == "✓":
                table[name][role] = ""
            elif cell.startswith("✓"):
                table[name][role] = re.sub(r"^✓\s*\((.*)\)$", r"\1", cell)
            else:
                assert cell == "–", f"{name}/{role}: {cell!r} is neither ✓ nor –"
    return table


def test_docs_print_exactly_the_rules() -> None:
    assert docs_table() == RULES


def test_system_only_transitions_take_no_actor_and_refuse_people() -> None:
    for name, fn in SYSTEM_ONLY.items():
        assert set(RULES[name]) == {"system"}
        assert "actor" not in inspect.signature(fn).parameters
        for role in lifecycle.ACTOR_ROLES:
            if role != "system":
                with pytest.raises(TransitionForbidden):
                    lifecycle.check(name, Actor(role=role, name=role))


@pytest.fixture
async def cast(db_url: str, world: Any) -> dict[str, Actor]:
    """One actor per role, all able to see resident R1; plus a dispatch-able alert factory's prerequisites."""
    await world.resident("R1", contacts=1)
    actors: dict[str, Actor] = {}
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        for role, scope, resident in (("admin", None, None), ("operator", "sz/futian", None),
                                      ("community_worker", "sz/futian/lianhua", None), ("family", None, "R1")):
            row = await (await conn.execute(
                "INSERT INTO users (username, password_hash, role, scope_path, resident_id)"
                " VALUES (%s, '!', %s, %s, %s) RETURNING id", (f"u-{role}", role, scope, resident))).fetchone()
            assert row is not None
            actors[role] = Actor.of_user(User(row[0], f"u-{role}", role, scope, resident))
    actors["contact"] = Actor.of_contact("contact-R1-1", "Contact 1", "R1", "sms-link")
    return actors


async def _fresh(db_url: str) -> int:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        # One open alert per resident and type: the previous round's alert makes room (test set-up only).
        await conn.execute("UPDATE alerts SET closed_at = now() WHERE closed_at IS NULL")
    alert_id = await raise_trigger(db_url, "R1", "sos")
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await conn.execute("INSERT INTO alert_dispatches (alert_id, service, cause, record, text_zh, text_en)"
                           " VALUES (%s, '120', 'ladder', '{}', 'zh', 'en')", (alert_id,))
    return alert_id


def _calls(cast: dict[str, Actor]) -> dict[str, Callable[[Any, int, Actor], Awaitable[Any]]]:
    worker = cast["community_worker"].user_id

    async def outcome(conn: Any, alert_id: int, actor: Actor) -> None:
        row = await (await conn.execute("SELECT id FROM alert_dispatches WHERE alert_id = %s",
                                        (alert_id,))).fetchone()
        await lifecycle.dispatch_outcome(conn, alert_id, row[0], actor, "ambulance_sent")

    async def confirm(conn: Any, alert_id: int, actor: Actor) -> None:
        await conn.execute("DELETE FROM alert_dispatches WHERE alert_id = %s", (alert_id,))
        await lifecycle.confirm_emergency(conn, alert_id, actor, "120", lambda *_: "emergency_120")

    return {
        "acknowledge": lambda c, a, who: lifecycle.acknowledge(c, a, who, "seen"),
        "comment": lambda c, a, who: lifecycle.comment(c, a, who, "called"),
        "on_my_way": lifecycle.on_my_way,
        "assign": lambda c, a, who: lifecycle.assign(c, a, who, worker or 0),
        "accept": lifecycle.accept,
        "progress": lambda c, a, who: lifecycle.progress(c, a, who, "on_the_way"),
        "close": lambda c, a, who: lifecycle.close(c, a, who, "false_alarm"),
        "confirm_emergency": confirm,
        "dispatch_outcome": outcome,
    }


async def test_every_role_can_make_exactly_the_transitions_of_the_table(db_url: str, cast: dict[str, Actor]) -> None:
    calls = _calls(cast)
    assert set(calls) | set(SYSTEM_ONLY) == set(RULES)
    seen: dict[str, dict[str, str]] = {name: {} for name in RULES}
    for name in SYSTEM_ONLY:
        seen[name] = {"system": ""}
    for name, call in calls.items():
        for role, actor in cast.items():
            alert_id = await _fresh(db_url)
            try:
                async with await psycopg.AsyncConnection.connect(db_url) as conn:
                    await call(conn, alert_id, actor)
            except TransitionForbidden:
                continue
            except TransitionConflict as err:
                assert "accept" in str(err) and "first" in str(err), f"{name} as {role}: {err}"
                # The condition: only after this actor accepted the alert itself.
                async with await psycopg.AsyncConnection.connect(db_url) as conn:
                    await lifecycle.accept(conn, alert_id, actor)
                async with await psycopg.AsyncConnection.connect(db_url) as conn:
                    await call(conn, alert_id, actor)
                seen[name][role] = OWN
                continue
            seen[name][role] = ""
    assert seen == RULES


async def test_each_transition_records_timeline_feed_and_audit_and_stops_the_ladder(
        db_url: str, cast: dict[str, Actor]) -> None:
    alert_id = await raise_trigger(db_url, "R1", "sos")
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        assert await lifecycle.acknowledge(conn, alert_id, cast["contact"], "daughter saw it")
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        assert not await lifecycle.acknowledge(conn, alert_id, cast["family"])
        timers = await (await conn.execute("SELECT count(*) FROM alert_timers WHERE alert_id = %s",
                                           (alert_id,))).fetchone()
        feed = await (await conn.execute("SELECT payload FROM feed_events ORDER BY id")).fetchall()
        audit = await (await conn.execute("SELECT user_id, action, target, details FROM audit_log")).fetchall()
    assert timers == (0,)
    entries = await timeline(db_url, alert_id)
    assert [k for k, _ in entries] == ["created", "acknowledged", "seen"]
    _, ack = entries[1]
    assert ack["by"] == "Contact 1" and ack["via"] == "sms-link" and ack["actor_kind"] == "contact"
    assert ack["recipient_id"] == "contact-R1-1" and ack["note"] == "daughter saw it"
    assert [p[0]["change"] for p in feed] == ["created", "acknowledged", "seen"]
    assert feed[1][0]["by"] == "Contact 1" and feed[1][0]["via"] == "sms-link"
    # Audited with ids only: a contact's recipient id, never its name or phone.
    assert audit == [(None, "alert.ack", f"alert:{alert_id}", {"via": "sms-link", "contact": "contact-R1-1"})]


async def test_a_community_worker_resolves_only_what_they_accepted(db_url: str, cast: dict[str, Actor]) -> None:
    """Issue 17 finding 16: resolve and close were two rules for one act."""
    worker = cast["community_worker"]
    alert_id = await raise_trigger(db_url, "R1", "sos")
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        with pytest.raises(TransitionConflict, match=r"accept alert .* first"):
            await lifecycle.close(conn, alert_id, worker, "false_alarm")
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await lifecycle.accept(conn, alert_id, worker)
        await lifecycle.close(conn, alert_id, worker, "false_alarm")
    kinds = [k for k, _ in await timeline(db_url, alert_id)]
    assert kinds == ["created", "accepted", "resolved"]


async def test_repeated_triggers_are_one_timeline_row_per_run(db_url: str, world: Any) -> None:
    """Issue 17 finding 7: a flood left one row per trigger; now a run is one row with count, first and last."""
    await world.resident("R1")
    started = time.monotonic()
    alert_id = await raise_trigger(db_url, "R1", "sos", device="WB1")
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        trig = await (await conn.execute("SELECT household_id, region_path FROM alerts WHERE id = %s",
                                         (alert_id,))).fetchone()
        assert trig is not None

        def trigger(severity: str = "critical") -> Trigger:
            return Trigger(type="sos", severity=severity, ts=datetime.now(UTC), resident_id="R1",
                           household_id=trig[0], region_path=trig[1], source_device="WB1")

        first = trigger()
        for _ in range(300):
            assert await lifecycle.raise_alert(conn, trigger()) == (alert_id, False)
            await conn.commit()
        last = trigger()
        assert await lifecycle.raise_alert(conn, last) == (alert_id, False)
        await conn.commit()
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await lifecycle.comment(conn, alert_id, Actor(role="operator", name="op"), "calling her")
        for _ in range(3):
            await lifecycle.raise_alert(conn, trigger())
        await conn.commit()
        count = await (await conn.execute("SELECT trigger_count FROM alerts WHERE id = %s", (alert_id,))).fetchone()
        fed = await (await conn.execute("SELECT count(*) FROM feed_events WHERE payload->>'change' = 'retriggered'"
                                        )).fetchone()
    elapsed = time.monotonic() - started
    entries = await timeline(db_url, alert_id)
    assert [k for k, _ in entries] == ["created", "retriggered", "comment", "retriggered"]
    run = entries[1][1]
    assert run["count"] == 301 and entries[3][1]["count"] == 3
    assert first.ts.isoformat() <= run["first_ts"] <= run["last_ts"] == last.ts.isoformat()
    assert count == (1 + 301 + 3,)
    # At most one feed event a second per run (plus the start of each run), not one per trigger.
    assert fed is not None and 2 <= fed[0] <= 2 + int(elapsed) + 1 < 300


async def test_an_open_alert_keeps_its_first_location_and_every_report_is_on_the_timeline(
        db_url: str, world: Any) -> None:
    """Issue 17 finding 2: a later (perhaps spoofed) position overwrote an open SOS's location."""
    await world.resident("R1")
    alert_id = await raise_trigger(db_url, "R1", "sos", device="WB1")
    shenzhen = {"lat": 22.5431, "lon": 114.0579, "source": "gps"}
    beijing = {"lat": 39.9042, "lon": 116.4074, "source": "gps"}
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        trig = await (await conn.execute("SELECT household_id, region_path FROM alerts WHERE id = %s",
                                         (alert_id,))).fetchone()
        assert trig is not None
        for device, place in [("WB1", shenzhen), ("W3G", beijing), ("W3G", beijing), ("WB1", None)]:
            await lifecycle.raise_alert(conn, Trigger(
                type="sos", severity="critical", ts=datetime.now(UTC), resident_id="R1", household_id=trig[0],
                region_path=trig[1], source_device=device, location=place))
            await conn.commit()
        row = await (await conn.execute("SELECT location FROM alerts WHERE id = %s", (alert_id,))).fetchone()
    assert row is not None and row[0] == shenzhen
    reports = [(d["device"], d.get("location", {}).get("lat")) for k, d in await timeline(db_url, alert_id)
               if k == "retriggered"]
    # The last report has no location: it starts a row of its own all the same, not credited to the watch.
    assert reports == [("WB1", 22.5431), ("W3G", 39.9042), ("WB1", None)]


async def test_assigning_reads_a_region_name_literally(db_url: str, world: Any) -> None:
    """Issue 17 finding 3: as a LIKE pattern, a worker's scope `sec_t` also covered `secxt`."""
    await world.region_tree()
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        for path in ("sz/futian/sec_t", "sz/futian/secxt"):
            await conn.execute("INSERT INTO regions (path, level, name) VALUES (%s, 'community', %s)", (path, path))
    await world.resident("R1", "sz/futian/secxt")
    await world.user("near", "community_worker", "sz/futian/sec_t")
    await world.user("there", "community_worker", "sz/futian/secxt")
    alert_id = await raise_trigger(db_url, "R1", "sos")
    operator = Actor(role="operator", name="op")
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        ids = dict(await (await conn.execute("SELECT username, id FROM users")).fetchall())
        with pytest.raises(TransitionInvalid):
            await lifecycle.assign(conn, alert_id, operator, ids["near"])
        await lifecycle.assign(conn, alert_id, operator, ids["there"])
