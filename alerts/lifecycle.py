"""One place for an alert's life: every transition locks the row, checks the actor, changes the alert and its
timers, writes the timeline and the live feed, and audits, in the caller's transaction.

The API routes, the public action links and the escalation engine all call these functions; none of them
writes an alert's state or its timer directly. `RULES` is the one table of who may do what (docs/alerts.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alerts.errors import AlertNotFound, TransitionConflict, TransitionForbidden, TransitionInvalid
from alerts.model import Trigger
from alerts.timeline import DUE_CHANNEL, add_event, feed
from hub.users import region_within

if TYPE_CHECKING:
    from hub.users import User

USER_ROLES = ("admin", "operator", "community_worker", "family")
ACTOR_ROLES = (*USER_ROLES, "contact", "system")
OWN = "own response"
"""Condition: only the responder who accepted the alert ("accept first")."""

# transition -> {role: condition ("" = none)}. A role missing from a row may never make that transition.
RULES: dict[str, dict[str, str]] = {
    "raise": {"system": ""},
    "retrigger": {"system": ""},
    "acknowledge": {"admin": "", "operator": "", "community_worker": "", "family": "", "contact": ""},
    "comment": {"admin": "", "operator": "", "community_worker": "", "family": ""},
    "on_my_way": {"admin": "", "operator": "", "community_worker": "", "family": "", "contact": ""},
    "assign": {"admin": "", "operator": ""},
    "accept": {"admin": "", "operator": "", "community_worker": ""},
    "progress": {"admin": OWN, "operator": OWN, "community_worker": OWN},
    "close": {"admin": "", "operator": "", "community_worker": OWN},
    "confirm_emergency": {"admin": "", "operator": ""},
    "cancel_by_checkin": {"system": ""},
    "dispatch_outcome": {"admin": "", "operator": ""},
}
STEPS = ("accepted", "on_the_way", "arrived", "closed")
RESPONDER_ROLES = ("community_worker", "operator", "admin")
RETRIGGER_FEED_GAP_S = 1.0
"""A run of retriggers puts at most one feed event a second on the console (plus any severity change)."""
_AUDIT = {"acknowledge": "alert.ack", "close": "alert.resolve", "confirm_emergency": "alert.confirm_emergency",
          "dispatch_outcome": "alert.dispatch_outcome", "assign": "alert.assigned", "accept": "alert.accepted",
          "on_my_way": "alert.on_my_way", "cancel_by_checkin": "alert.cancel_by_checkin"}


def roles_for(transition: str) -> tuple[str, ...]:
    """The user roles that may make a transition (for the routes' 403 gate, from the same table)."""
    return tuple(role for role in USER_ROLES if role in RULES[transition])


@dataclass(frozen=True)
class Actor:
    """Who makes a transition, and through which channel (console, sms-link, sms-reply, engine...)."""

    role: str
    name: str
    via: str = "console"
    user: User | None = None
    contact: str | None = None  # recipient id of a family contact: contact-<resident>-<position>
    resident_id: str | None = None  # the contact's resident

    @classmethod
    def of_user(cls, user: User, via: str = "console") -> Actor:
        """A logged-in (or link-holding) user."""
        return cls(role=user.role, name=user.username, via=via, user=user)

    @classmethod
    def of_contact(cls, recipient_id: str, name: str, resident_id: str, via: str) -> Actor:
        """A resident's family contact, acting through a signed link or an SMS reply."""
        return cls(role="contact", name=name, via=via, contact=recipient_id, resident_id=resident_id)

    @property
    def user_id(self) -> int | None:
        """The user's id, or None for contacts and the system."""
        return self.user.id if self.user is not None else None

    def trace(self) -> dict[str, Any]:
        """Who and how, for the timeline and the feed: "acknowledged by <name> via <channel>"."""
        out: dict[str, Any] = {"by": self.name, "actor_kind": "contact" if self.contact else
                               "user" if self.user else "system", "via": self.via}
        if self.contact:
            out["recipient_id"] = self.contact
        return out


SYSTEM = Actor(role="system", name="system", via="ingest")
ENGINE = Actor(role="system", name="engine", via="engine")


def check(transition: str, actor: Actor, row: dict[str, Any] | None = None) -> None:
    """Refuse a transition this actor may not make: 403 for the role, 409 for an unmet condition."""
    rule = RULES[transition]
    if actor.role not in rule:
        raise TransitionForbidden(f"role {actor.role} may not {transition.replace('_', ' ')}")
    if rule[actor.role] == OWN and row is not None:
        if row["responder_id"] is None or row["responder_id"] != actor.user_id:
            raise TransitionConflict(f"accept alert {row['id']} first; it is not your response")
        if row["response_state"] == "closed":
            raise TransitionConflict(f"alert {row['id']} is closed")


_LOCK = """SELECT a.id, a.resident_id, a.household_id, a.region_path, a.type, a.severity, a.active,
  a.acknowledged_at, a.acknowledged_by, a.closed_at, a.assigned_to, p.user_id AS responder_id,
  p.state AS response_state
FROM alerts a LEFT JOIN alert_responses p ON p.alert_id = a.id
WHERE a.id = %(id)s AND {where} FOR UPDATE OF a"""


async def lock(conn: AsyncConnection[Any], alert_id: int, actor: Actor) -> dict[str, Any]:
    """Lock the alert row for this transaction; absent and out of the actor's sight look the same."""
    where, params = "TRUE", dict[str, Any]()
    if actor.user is not None:
        from hub.users import scope_filter  # the one scope rule, shared with every list query

        where, params = scope_filter(actor.user, "a.region_path", "a.resident_id")
    elif actor.contact is not None:
        where, params = "a.resident_id = %(contact_resident)s", {"contact_resident": actor.resident_id}
    cur = conn.cursor(row_factory=dict_row)
    row = await (await cur.execute(_LOCK.format(where=where), {"id": alert_id, **params})).fetchone()
    if row is None:
        raise AlertNotFound(f"alert {alert_id} not found")
    return row


async def _record(conn: AsyncConnection[Any], row: dict[str, Any], actor: Actor, kind: str,
                  details: dict[str, Any], audit: str | None = None, change: str | None = None) -> None:
    """Timeline entry, feed event and audit record of one change, in the caller's transaction."""
    trace = actor.trace()
    summary = f"{kind.replace('_', ' ')} by {actor.name} via {actor.via}"  # "acknowledged by <contact> via sms-link"
    await add_event(conn, row["id"], kind, actor.name, {**details, **trace, "summary": summary})
    await feed(conn, "alert", row["region_path"], row["resident_id"],
               {"alert_id": row["id"], "type": row["type"], "severity": row["severity"],
                "change": change or kind, **trace})
    if audit is not None:
        audit_details: dict[str, Any] = {"via": actor.via}
        if actor.contact:
            audit_details["contact"] = actor.contact  # an id, never a name or phone
        await conn.execute("INSERT INTO audit_log (user_id, action, target, details) VALUES (%s, %s, %s, %s)",
                           (actor.user_id, audit, f"alert:{row['id']}", Jsonb(audit_details)))


async def _stop_ladder(conn: AsyncConnection[Any], alert_id: int) -> None:
    # A step already claimed by an engine finds its timer gone and records nothing more.
    await conn.execute("DELETE FROM alert_timers WHERE alert_id = %s", (alert_id,))


def _open(row: dict[str, Any]) -> None:
    if row["closed_at"] is not None:
        raise TransitionConflict(f"alert {row['id']} is closed")


# ---- raise and retrigger -------------------------------------------------------------------------------

_RAISE = """
INSERT INTO alerts (resident_id, household_id, region_path, type, severity, first_ts, last_ts,
                    source_device, location, details)
VALUES (%(resident_id)s, %(household_id)s, %(region_path)s, %(type)s, %(severity)s, %(ts)s, %(ts)s,
        %(source_device)s, %(location)s, %(details)s)
ON CONFLICT (resident_id, type) WHERE closed_at IS NULL DO UPDATE SET
  last_ts = GREATEST(alerts.last_ts, EXCLUDED.last_ts),
  trigger_count = alerts.trigger_count + 1,
  severity = CASE WHEN array_position(ARRAY['low','medium','high','critical'], EXCLUDED.severity)
                     > array_position(ARRAY['low','medium','high','critical'], alerts.severity)
                  THEN EXCLUDED.severity ELSE alerts.severity END,
  -- The first location stays: a later report (perhaps from a spoofed watch) never moves an open alert;
  -- every report is on the timeline instead.
  location = COALESCE(alerts.location, EXCLUDED.location),
  active = true,
  updated_at = now()
RETURNING id, (xmax = 0) AS created, severity, trigger_count
"""

# A run of repeated triggers is one timeline row with a count, first and last time: the row is updated
# while it is still the alert's latest entry, and a new run starts after anything else happened. The
# alert row is locked by the upsert above, so two retriggers of one alert never race here. One statement,
# no answer awaited: the ingestion writer sends it inside its pipeline.
_RETRIGGER = """
WITH last AS (
  SELECT id, kind, details FROM alert_events WHERE alert_id = %(id)s ORDER BY id DESC LIMIT 1
), upd AS (
  UPDATE alert_events e SET details = e.details || %(event)s || jsonb_build_object(
      'count', COALESCE((last.details->>'count')::int, 1) + 1,
      'first_ts', COALESCE(last.details->'first_ts', last.details->'ts'),
      'last_ts', %(ts)s::text,
      'fed_at', CASE WHEN %(now)s - COALESCE((last.details->>'fed_at')::float8, 0) >= %(gap)s
                       OR last.details->>'severity' IS DISTINCT FROM %(severity)s
                     THEN %(now)s ELSE (last.details->>'fed_at')::float8 END)
  FROM last WHERE e.id = last.id AND last.kind = 'retriggered'
    -- A report from another device, of other trust, or from a new place starts a row of its own: every report
    -- stays on the timeline with its source, in order (a spoofed watch's must not be credited to a wristband).
    AND last.details->'device' IS NOT DISTINCT FROM %(event)s->'device'
    AND last.details->'verified' IS NOT DISTINCT FROM %(event)s->'verified'
    AND NOT (%(event)s ? 'location' AND last.details->'location' IS DISTINCT FROM %(event)s->'location')
  RETURNING (%(now)s - COALESCE((last.details->>'fed_at')::float8, 0) >= %(gap)s
             OR last.details->>'severity' IS DISTINCT FROM %(severity)s) AS due,
            (e.details->>'count')::int AS count
), ins AS (
  INSERT INTO alert_events (alert_id, kind, actor, details)
  SELECT %(id)s, 'retriggered', 'system', %(event)s || jsonb_build_object(
      'count', 1, 'first_ts', %(ts)s::text, 'last_ts', %(ts)s::text, 'fed_at', %(now)s)
  WHERE NOT EXISTS (SELECT 1 FROM upd)
  RETURNING 1 AS count
)
INSERT INTO feed_events (kind, region_path, resident_id, payload)
SELECT 'alert', %(region_path)s, %(resident_id)s,
       %(payload)s || jsonb_build_object('run_count', COALESCE((SELECT count FROM upd), 1))
WHERE EXISTS (SELECT 1 FROM ins) OR EXISTS (SELECT 1 FROM upd WHERE due)
"""


async def raise_alert(conn: AsyncConnection[Any], trigger: Trigger) -> tuple[int, bool]:
    """Raise an alert, or retrigger the open one of the same resident and type; (id, created)."""
    cur = await conn.execute(
        _RAISE,
        {
            "resident_id": trigger.resident_id,
            "household_id": trigger.household_id,
            "region_path": trigger.region_path,
            "type": trigger.type,
            "severity": trigger.severity,
            "ts": trigger.ts,
            "source_device": trigger.source_device,
            "location": Jsonb(trigger.location) if trigger.location else None,
            "details": Jsonb(trigger.details),
        },
    )
    row = await cur.fetchone()
    assert row is not None
    alert_id, created, severity, count = row
    event = {"type": trigger.type, "severity": severity, "device": trigger.source_device,
             "ts": trigger.ts.isoformat(), **trigger.details}
    if trigger.location:
        event["location"] = trigger.location
    payload = {"alert_id": alert_id, "type": trigger.type, "severity": severity,
               "change": "created" if created else "retriggered", "trigger_count": count}
    if not created:
        await conn.execute(_RETRIGGER, {
            "id": alert_id, "event": Jsonb(event), "ts": trigger.ts.isoformat(), "now": time.time(),
            "gap": RETRIGGER_FEED_GAP_S, "severity": severity, "region_path": trigger.region_path,
            "resident_id": trigger.resident_id, "payload": Jsonb(payload)})
        return alert_id, False
    await add_event(conn, alert_id, "created", "system", event)
    # The first escalation step is due now; the engine claims it with SKIP LOCKED, woken on commit.
    await conn.execute(
        "WITH t AS (INSERT INTO alert_timers (alert_id, step, due_at) VALUES (%s, 0, now())"
        " ON CONFLICT DO NOTHING RETURNING 1)"
        " SELECT pg_notify(%s, '') FROM t",
        (alert_id, DUE_CHANNEL),
    )
    await feed(conn, "alert", trigger.region_path, trigger.resident_id, payload)
    return alert_id, True


# ---- people's transitions ------------------------------------------------------------------------------

async def _acknowledge_row(conn: AsyncConnection[Any], row: dict[str, Any], actor: Actor, note: str) -> bool:
    if row["acknowledged_at"] is not None:
        return False
    await conn.execute(
        "UPDATE alerts SET acknowledged_at = now(), acknowledged_by = %s, updated_at = now() WHERE id = %s",
        (actor.user_id, row["id"]))
    await _stop_ladder(conn, row["id"])
    await _record(conn, row, actor, "acknowledged", {"note": note}, _AUDIT["acknowledge"])
    row["acknowledged_at"] = True
    return True


async def acknowledge(conn: AsyncConnection[Any], alert_id: int, actor: Actor, note: str = "") -> bool:
    """Acknowledge: stops the ladder. A repeat changes nothing and is kept as `seen`; True when it acknowledged."""
    check("acknowledge", actor)
    row = await lock(conn, alert_id, actor)
    if await _acknowledge_row(conn, row, actor, note):
        return True
    await _record(conn, row, actor, "seen", {"note": note})
    return False


async def comment(conn: AsyncConnection[Any], alert_id: int, actor: Actor, text: str) -> None:
    """A free-text note on the timeline."""
    check("comment", actor)
    row = await lock(conn, alert_id, actor)
    await _record(conn, row, actor, "comment", {"text": text})


async def assign(conn: AsyncConnection[Any], alert_id: int, actor: Actor, user_id: int, note: str = "") -> None:
    """Give an open alert to a responder whose scope covers it."""
    check("assign", actor)
    row = await lock(conn, alert_id, actor)
    _open(row)
    target = await (await conn.execute(
        "SELECT username, scope_path FROM users WHERE id = %s AND NOT disabled AND role = ANY(%s)",
        (user_id, list(RESPONDER_ROLES)))).fetchone()
    region: str = row["region_path"]
    if target is None or not (target[1] is None or region_within(region, target[1])):
        raise TransitionInvalid(f"user {user_id} cannot respond to alerts in {region}")
    await conn.execute("UPDATE alerts SET assigned_to = %s, updated_at = now() WHERE id = %s", (user_id, alert_id))
    await _record(conn, row, actor, "assigned", {"to": target[0], "note": note}, _AUDIT["assign"])


async def _accept_row(conn: AsyncConnection[Any], row: dict[str, Any], actor: Actor, note: str) -> None:
    await conn.execute("INSERT INTO alert_responses (alert_id, user_id, state) VALUES (%s, %s, 'accepted')",
                       (row["id"], actor.user_id))
    await conn.execute(
        "UPDATE alerts SET assigned_to = %(me)s, acknowledged_at = COALESCE(acknowledged_at, now()),"
        " acknowledged_by = COALESCE(acknowledged_by, %(me)s), updated_at = now() WHERE id = %(id)s",
        {"me": actor.user_id, "id": row["id"]})
    await _stop_ladder(conn, row["id"])
    await _record(conn, row, actor, "accepted", {"note": note}, _AUDIT["accept"])
    row.update(responder_id=actor.user_id, response_state="accepted", acknowledged_at=True)


async def accept(conn: AsyncConnection[Any], alert_id: int, actor: Actor, note: str = "") -> None:
    """Take the alert: acknowledges it and stops the ladder; 409 when someone else already took it."""
    check("accept", actor)
    row = await lock(conn, alert_id, actor)
    _open(row)
    if row["responder_id"] is not None and row["responder_id"] != actor.user_id:
        raise TransitionConflict(f"alert {alert_id} was already accepted by someone else")
    if row["responder_id"] is None:
        await _accept_row(conn, row, actor, note)


async def _progress_row(conn: AsyncConnection[Any], row: dict[str, Any], actor: Actor, state: str,
                        note: str) -> None:
    if STEPS.index(state) <= STEPS.index(row["response_state"]):
        raise TransitionConflict(f"the response is already {row['response_state']}; {state} would go backwards")
    await conn.execute("UPDATE alert_responses SET state = %s, updated_at = now() WHERE alert_id = %s",
                       (state, row["id"]))
    await _record(conn, row, actor, state, {"note": note}, f"alert.{state}")
    row["response_state"] = state


async def progress(conn: AsyncConnection[Any], alert_id: int, actor: Actor, state: str, note: str = "") -> None:
    """The responder's next step (on_the_way, then arrived); only forward, only their own response."""
    if state not in ("on_the_way", "arrived"):
        raise TransitionInvalid(f"unknown response step {state!r}")
    check("progress", actor)
    row = await lock(conn, alert_id, actor)
    _open(row)
    check("progress", actor, row)
    await _progress_row(conn, row, actor, state, note)


async def on_my_way(conn: AsyncConnection[Any], alert_id: int, actor: Actor, note: str = "") -> None:
    """"I'm on my way": acknowledges, and a free responder takes the alert and sets off; others are noted."""
    check("on_my_way", actor)
    row = await lock(conn, alert_id, actor)
    _open(row)
    await _acknowledge_row(conn, row, actor, note)
    responder = actor.user is not None and actor.role in RULES["accept"]
    if responder and row["responder_id"] in (None, actor.user_id):
        if row["responder_id"] is None:
            await _accept_row(conn, row, actor, note)
        if row["response_state"] == "accepted":
            await _progress_row(conn, row, actor, "on_the_way", note)
        return
    await _record(conn, row, actor, "on_my_way", {"note": note}, _AUDIT["on_my_way"])


async def close(conn: AsyncConnection[Any], alert_id: int, actor: Actor, resolution: str, note: str = "") -> None:
    """Close (resolve) with an outcome: one rule for both routes; a community worker closes only their own."""
    check("close", actor)
    row = await lock(conn, alert_id, actor)
    if row["closed_at"] is not None:
        raise TransitionConflict(f"alert {alert_id} is already closed")
    check("close", actor, row)
    await conn.execute(
        "UPDATE alerts SET closed_at = now(), active = false, resolution = %(res)s,"
        " acknowledged_at = COALESCE(acknowledged_at, now()), acknowledged_by = COALESCE(acknowledged_by, %(me)s),"
        " updated_at = now() WHERE id = %(id)s", {"res": resolution, "me": actor.user_id, "id": alert_id})
    await _stop_ladder(conn, alert_id)
    if actor.user_id is not None:
        await conn.execute(
            "INSERT INTO alert_responses (alert_id, user_id, state, outcome) VALUES (%s, %s, 'closed', %s)"
            " ON CONFLICT (alert_id) DO UPDATE SET state = 'closed', outcome = EXCLUDED.outcome, updated_at = now()",
            (alert_id, actor.user_id, resolution))
    await _record(conn, row, actor, "resolved", {"resolution": resolution, "note": note}, _AUDIT["close"])


async def confirm_emergency(conn: AsyncConnection[Any], alert_id: int, actor: Actor, service: str | None,
                            choose: Callable[[str, str, Sequence[str]], str], note: str = "") -> str:
    """Call 120/110 now: the engine's confirmed-dispatch step is due at once; returns the emergency kind.

    `choose(type, severity, risk_flags)` names the service the alert's policy calls when `service` is unset.
    The caller wakes its own engine after commit; other processes wake on the NOTIFY.
    """
    check("confirm_emergency", actor)
    row = await lock(conn, alert_id, actor)
    _open(row)
    done = await (await conn.execute(
        "SELECT id FROM alert_dispatches WHERE alert_id = %s ORDER BY id LIMIT 1", (alert_id,))).fetchone()
    if done is not None:
        raise TransitionConflict(f"alert {alert_id} was already dispatched ({done[0]})")
    if service is not None:
        kind = f"emergency_{service}"
    else:
        flags = await (await conn.execute(
            "SELECT risk_flags FROM residents WHERE id = %s", (row["resident_id"],))).fetchone()
        kind = choose(row["type"], row["severity"], list(flags[0]) if flags and flags[0] else [])
    await conn.execute(
        "WITH t AS (INSERT INTO alert_timers (alert_id, step, due_at, jump) VALUES (%s, 0, now(), %s)"
        " ON CONFLICT (alert_id) DO UPDATE SET jump = EXCLUDED.jump, claimed_by = NULL, claimed_until = NULL"
        " RETURNING 1) SELECT pg_notify(%s, '') FROM t",
        (alert_id, kind, DUE_CHANNEL))
    await _record(conn, row, actor, "emergency_confirmed", {"service": kind.removeprefix("emergency_"),
                                                             "note": note}, _AUDIT["confirm_emergency"])
    return kind


async def dispatch_outcome(conn: AsyncConnection[Any], alert_id: int, dispatch_id: int, actor: Actor,
                           outcome: str, reference: str = "", note: str = "") -> None:
    """What came of a 120/110 call; a later report replaces the earlier one, both stay on the timeline."""
    check("dispatch_outcome", actor)
    row = await lock(conn, alert_id, actor)
    cur = await conn.execute(
        "UPDATE alert_dispatches SET outcome = %s, outcome_ref = %s, outcome_note = %s, outcome_by = %s,"
        " outcome_at = now() WHERE id = %s AND alert_id = %s RETURNING service",
        (outcome, reference or None, note, actor.user_id, dispatch_id, alert_id))
    updated = await cur.fetchone()
    if updated is None:
        raise AlertNotFound(f"dispatch {dispatch_id} of alert {alert_id} not found")
    await _record(conn, row, actor, "dispatch_outcome",
                  {"dispatch_id": dispatch_id, "service": updated[0], "outcome": outcome, "reference": reference,
                   "note": note}, _AUDIT["dispatch_outcome"])


# ---- the engine's transitions --------------------------------------------------------------------------

async def cancel_by_checkin(conn: AsyncConnection[Any], alert_id: int, device_id: str, checkin_ts: str) -> bool:
    """An "I'm OK" check-in within a fall's cancel window closes it as resident_fine; False if already closed."""
    check("cancel_by_checkin", ENGINE)
    row = await lock(conn, alert_id, ENGINE)
    if row["closed_at"] is not None:
        return False
    await conn.execute("UPDATE alerts SET closed_at = now(), active = false, resolution = 'resident_fine',"
                       " updated_at = now() WHERE id = %s", (alert_id,))
    await _stop_ladder(conn, alert_id)
    await add_event(conn, alert_id, "cancelled_by_resident", ENGINE.name,
                    {"device": device_id, "checkin_ts": checkin_ts})
    await _record(conn, row, ENGINE, "resolved", {"resolution": "resident_fine",
                                                  "note": "I'm OK check-in within the fall cancel window"},
                  _AUDIT["cancel_by_checkin"])
    return True
