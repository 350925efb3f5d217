"""The escalation engine: runs each alert's policy ladder from durable PostgreSQL timers, exactly once per step.

A worker claims a due `alert_timers` row with `FOR UPDATE SKIP LOCKED` and takes a short lease on it
(`claimed_by`, `claimed_until`), commits, sends the step's notifications without holding a lock (so an
acknowledgement never waits for a slow channel), then records every attempt and schedules the next step
only if its lease is still the row's claim. A crashed worker's lease expires and the step runs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from alerts import lifecycle
from alerts import recipients as people
from alerts.actions import ActionLinks, link_secret
from alerts.channels import (
    Channel,
    ChannelServices,
    DeliveryResult,
    Notification,
    Recipient,
    build_channels,
    load_channels,
    parse_channel_config,
)
from alerts.channels.live import RESOURCE, PoolFeed
from alerts.clock import Clock, system_clock
from alerts.dispatch import TYPE_NAMES, DispatchRecord, build_record, save_record
from alerts.policy import (
    BUILTIN_CHANNELS,
    EMERGENCY_KINDS,
    ChannelsFile,
    Policy,
    QuietHours,
    Step,
    check_channels,
    effective_routes,
    load_policies,
    parse_channels_file,
    read_document,
    select_policy,
)
from alerts.timeline import DUE_CHANNEL, add_event, feed
from hub.health import Health
from hub.shutdown import raise_if_cancelled

if TYPE_CHECKING:
    from hub.settings import Settings

__all__ = ["Clock", "Engine", "EscalationConfig", "build_config", "system_clock"]

log = logging.getLogger(__name__)

LEASE_S = 30
LINK_CHANNELS = frozenset({"sms", "wecom", "dingtalk", "smtp", "webhook"})
LINK_RECIPIENTS = ("contact-", "user-")
FALL_SOURCES = ("device", "radar")
_SEVERITY_ZH = {"critical": "紧急", "high": "高", "medium": "中", "low": "低"}


@dataclass
class EscalationConfig:
    """Everything the engine needs besides the database: policies, channels, routes, quiet hours."""

    policies: list[Policy]
    channels: dict[str, Channel]
    routes: dict[str, list[str]]
    quiet: QuietHours | None = None
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    call_centre_phone: str | None = None
    concurrency: int = 2
    links: ActionLinks | None = None  # signs the "Seen" / "On my way" links put in notifications

    async def aclose(self) -> None:
        """Close every channel (each closes only what it opened itself)."""
        for channel in self.channels.values():
            await channel.aclose()


def build_config(
    pool: AsyncConnectionPool[Any],
    *,
    policy_file: Any = None,
    channels_file: Any = None,
    quiet_hours: str | None = None,
    timezone: str = "Asia/Shanghai",
    call_centre_phone: str | None = None,
    concurrency: int = 2,
    http_client: httpx.AsyncClient | None = None,
    services: ChannelServices | None = None,
    links: ActionLinks | None = None,
) -> EscalationConfig:
    """Load and cross-check policies and channels; any mistake is a ConfigError naming it."""
    policies = load_policies(policy_file)
    doc = (parse_channels_file(read_document(channels_file, "channels file"), f"channels file {channels_file}")
           if channels_file is not None else ChannelsFile())
    registry = load_channels()
    configs = [parse_channel_config(raw, registry) for raw in doc.channels]
    named = {c.name or c.type for c in configs}
    configs += [parse_channel_config({"type": key}, registry) for key in BUILTIN_CHANNELS if key not in named]
    base = services or ChannelServices()
    services = ChannelServices(sleep=base.sleep, clock=base.clock, wall_clock=base.wall_clock, jitter=base.jitter,
                               resources={RESOURCE: PoolFeed(pool), **base.resources})
    channels = build_channels(configs, registry, http_client=http_client, services=services)
    routes = effective_routes(doc.routes)
    check_channels(policies, routes, channels)
    return EscalationConfig(policies, channels, routes, QuietHours.parse(quiet_hours, timezone), ZoneInfo(timezone),
                            call_centre_phone, concurrency, links)


_TIMER_COLUMNS = ("alert_id", "step", "due_at", "reminders", "origin_at", "phase", "jump", "reason")
# Under load every round trip waits for the ingest loop's next slice, so claiming the timer and
# reading its alert is one statement.
_CLAIM = (
    "WITH due AS (SELECT alert_id FROM alert_timers"
    "  WHERE (due_at <= %(now)s OR origin_at IS NULL OR jump IS NOT NULL)"
    "    AND (claimed_until IS NULL OR claimed_until < clock_timestamp())"
    "  ORDER BY jump IS NULL, due_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
    " UPDATE alert_timers t SET claimed_by = %(token)s,"
    "  claimed_until = clock_timestamp() + make_interval(secs => %(lease)s)"
    " FROM due, alerts a JOIN residents r ON r.id = a.resident_id JOIN households h ON h.id = a.household_id"
    " WHERE t.alert_id = due.alert_id AND a.id = due.alert_id"
    " RETURNING t.alert_id, t.step, t.due_at, t.reminders, t.origin_at, t.phase, t.jump, t.reason,"
    "  a.id, a.type, a.severity, a.active, a.acknowledged_at, a.closed_at, a.resident_id,"
    "  a.household_id, a.region_path, a.first_ts, a.created_at, a.location, a.details, a.source_device,"
    "  r.name AS resident_name, r.risk_flags, h.address"
)


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


@dataclass
class _Job:
    """One claimed timer row with its alert."""

    token: uuid.UUID
    timer: dict[str, Any]
    alert: dict[str, Any]


@dataclass
class _Outcome:
    """What processing a job decided: timeline entries, feed changes and the timer's next state."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    delete: bool = False
    timer: dict[str, Any] = field(default_factory=dict)
    dispatch_delivered: list[tuple[int, bool]] = field(default_factory=list)


class Engine:
    """Runs escalation ladders for open alerts; any number of engines may share one database.

    `pool` is the hub's connection pool, `health` receives counters, `clock` decides what is due
    (a FakeClock in tests), and `config` holds policies and channels (defaults: the built-in
    policies on the console and live-feed channels).
    """

    def __init__(self, pool: AsyncConnectionPool[Any], health: Health, clock: Clock = system_clock,
                 config: EscalationConfig | None = None) -> None:
        self._pool = pool
        self._health = health
        self._clock = clock
        self.config = config or build_config(pool)
        self._idle: deque[asyncio.Future[None]] = deque()  # run()'s workers waiting for work
        self._wakes = 0  # wake-ups so far: a worker whose claim found nothing looks again if this moved
        self._claiming = 0  # workers between the start of a claim and its answer

    @classmethod
    def from_settings(cls, pool: AsyncConnectionPool[Any], health: Health, settings: Settings,
                      clock: Clock = system_clock) -> Engine:
        """An engine configured from ELDERCARE_POLICY_FILE, ELDERCARE_CHANNELS_FILE and quiet hours."""
        secret = settings.action_link_secret.get_secret_value() if settings.action_link_secret else None
        links = ActionLinks(link_secret(secret, settings.data_dir), settings.public_base_url,
                            settings.action_link_ttl_hours * 3600)
        config = build_config(pool, policy_file=settings.policy_file, channels_file=settings.channels_file,
                              quiet_hours=settings.quiet_hours, timezone=settings.local_timezone,
                              call_centre_phone=settings.call_centre_phone,
                              concurrency=settings.escalation_concurrency, links=links)
        return cls(pool, health, clock, config)

    @property
    def policies(self) -> Sequence[Policy]:
        """The effective policies, first match wins."""
        return self.config.policies

    def wake(self) -> None:
        """A new alert or an emergency confirmation was committed: a worker looks for due timers now."""
        self._wakes += 1
        if not self._claiming:
            # While some worker is claiming, a burst of NOTIFYs (one per new alert) costs that worker one
            # more look, not a query per notification.
            self._wake_idle()

    def _wake_idle(self) -> None:
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def emergency_kind(self, alert_type: str, severity: str, risk_flags: Sequence[str]) -> str:
        """Whom an operator's emergency confirmation calls for this alert: 120 or 110."""
        policy = select_policy(self.policies, alert_type, severity, risk_flags)
        index = policy.dispatch_index()
        if index is not None:
            return next(k for k in policy.steps[index].recipients if k in EMERGENCY_KINDS)
        return policy.emergency or "emergency_120"

    async def _listen(self) -> None:
        """Wake when any process commits a step due now: raise_alert and confirmations NOTIFY DUE_CHANNEL."""
        conninfo = self._pool.conninfo
        if not isinstance(conninfo, str):
            return  # a pool built from a callable: no way to open a side connection; polling still works
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
                async with conn:
                    # Not the live feed: the engine's own timeline entries would wake it for nothing.
                    await conn.execute(f"LISTEN {DUE_CHANNEL}")
                    self.wake()  # anything committed while we were not listening
                    async for _ in conn.notifies():
                        self.wake()
            except (psycopg.Error, OSError) as err:
                log.warning("escalation listener lost the database (%s); polling until it is back",
                            type(err).__name__)
                await asyncio.sleep(1.0)

    async def run(self, poll_s: float = 1.0) -> None:
        """Run due steps until cancelled, `concurrency` at a time; a database outage is logged and retried."""
        listener = asyncio.create_task(self._listen(), name="escalation-listener")
        try:
            async with asyncio.TaskGroup() as tg:
                for i in range(max(1, self.config.concurrency)):
                    tg.create_task(self._work(poll_s), name=f"escalation-{i}")
        finally:
            listener.cancel()
            await self.config.aclose()

    async def _work(self, poll_s: float) -> None:
        """One of run()'s workers: claim and run due steps; when none is due, wait for a wake-up or the next due time.

        A worker waits for nothing but work: a new alert is claimed by an idle worker the moment its
        NOTIFY arrives, not after a sweep of every worker finishes, and a worker that found a job wakes
        one more, so a burst spreads over the workers without every wake-up querying from all of them.
        """
        outage = 0
        while True:
            raise_if_cancelled()
            seen = self._wakes
            self._claiming += 1
            try:
                job = await self._claim()
                wait = poll_s if job is not None else await self._next_wait(poll_s)
                outage = 0
            except (psycopg.Error, PoolTimeout, OSError) as err:
                outage += 1
                log.warning("escalation claim failed: %s", type(err).__name__)
                job, wait = None, -1.0
            finally:
                self._claiming -= 1
            if wait < 0:
                await asyncio.sleep(min(10.0, poll_s * outage))
                continue
            if job is not None:
                self._wake_idle()  # more may be due: one more worker looks, so a burst spreads
                await self._run_job(job)
                continue
            if self._wakes != seen:
                continue  # woken while claiming: what was committed meanwhile may not have been seen
            loop = asyncio.get_running_loop()
            waiter = loop.create_future()
            self._idle.append(waiter)
            # A bare future with a timer, not asyncio.wait_for: on Python 3.11, wait_for returns normally
            # when its future completes just as the task is cancelled, and a worker that swallowed its
            # cancellation would keep the engine (and a hub's shutdown) from ever finishing.
            timer = loop.call_later(wait, _settle, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                with contextlib.suppress(ValueError):
                    self._idle.remove(waiter)

    async def _next_wait(self, poll_s: float) -> float:
        async with self._pool.connection() as conn:
            # A step another worker holds is not this worker's to wait for: that worker goes on with the
            # alert, or its lease expires (LEASE_S, longer than any poll). Counting it made idle workers
            # poll every 10 ms for as long as any step was being sent.
            row = await (await conn.execute(
                "SELECT min(due_at) FROM alert_timers WHERE claimed_until IS NULL OR claimed_until < clock_timestamp()"
            )).fetchone()
        if row is None or row[0] is None:
            return poll_s
        return min(poll_s, max(0.01, (row[0] - self._clock()).total_seconds()))

    async def tick(self, limit: int = 200) -> int:
        """Run every step that is due now, `concurrency` at a time; returns how many ran."""
        processed = 0
        outages: list[Exception] = []

        async def worker() -> None:
            nonlocal processed
            while processed < limit:
                try:
                    job = await self._claim()
                except (psycopg.Error, PoolTimeout, OSError) as err:
                    outages.append(err)
                    return
                if job is None:
                    return
                processed += 1
                await self._run_job(job)

        async with asyncio.TaskGroup() as tg:
            for _ in range(max(1, self.config.concurrency)):
                tg.create_task(worker())
        if outages:
            raise outages[0]  # `run` logs it and tries again; callers see the plain database error
        return processed

    async def _run_job(self, job: _Job) -> None:
        try:
            await self._process(job)
        except Exception:
            # The lease is left to expire, so the step is retried in LEASE_S seconds.
            log.exception("escalation step failed alert_id=%s", job.timer["alert_id"])
            self._health.count("escalation_errors")

    async def _claim(self) -> _Job | None:
        """Lease one due timer (new, confirmed or past due) and read its alert, in one round trip."""
        token = uuid.uuid4()
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            row = await (await cur.execute(_CLAIM, {"now": self._clock(), "token": token, "lease": LEASE_S})).fetchone()
        if row is None:
            return None
        timer = {k: row.pop(k) for k in _TIMER_COLUMNS}
        return _Job(token, timer, row)

    async def _renew(self, job: _Job) -> None:
        while True:
            await asyncio.sleep(LEASE_S / 3)
            async with self._pool.connection() as conn:
                await conn.execute(
                    "UPDATE alert_timers SET claimed_until = clock_timestamp() + make_interval(secs => %s)"
                    " WHERE alert_id = %s AND claimed_by = %s", (LEASE_S, job.timer["alert_id"], job.token))

    async def _process(self, job: _Job) -> None:
        renew = asyncio.create_task(self._renew(job))
        try:
            outcome = await self._decide(job)
        except asyncio.CancelledError:
            # Shutting down mid-step: hand the step back so the next engine runs it at once rather than
            # after the lease; a recipient already reached may then be told twice, never not at all.
            with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
                await asyncio.shield(asyncio.wait_for(self._release(job), 2))
            raise
        finally:
            renew.cancel()
            # asyncio.wait, not `suppress(CancelledError): await renew`: that also swallowed a shutdown's
            # cancellation arriving at this moment, and the worker then ran on and the engine never stopped.
            await asyncio.wait({renew})
        await self._record(job, outcome)

    async def _release(self, job: _Job) -> None:
        async with self._pool.connection() as conn:
            await conn.execute("UPDATE alert_timers SET claimed_by = NULL, claimed_until = NULL"
                               " WHERE alert_id = %s AND claimed_by = %s", (job.timer["alert_id"], job.token))

    async def _decide(self, job: _Job) -> _Outcome:  # noqa: PLR0911 - one return per ladder situation
        now = self._clock()
        timer, alert = job.timer, job.alert
        out = _Outcome()
        if alert["closed_at"] is not None or (not alert["active"] and timer["jump"] is None):
            out.delete = True
            out.events.append(("ladder_stopped", {"reason": "closed" if alert["closed_at"] else "cleared"}))
            return out
        if alert["acknowledged_at"] is not None and timer["jump"] is None:
            out.delete = True  # the acknowledgement endpoint normally removed the timer already
            return out
        policy = select_policy(self.policies, alert["type"], alert["severity"], alert["risk_flags"])
        origin: datetime = timer["origin_at"] or now
        if timer["jump"] is not None:
            return await self._confirmed_dispatch(job, policy, now, origin)
        source = (alert["details"] or {}).get("source")
        if (timer["origin_at"] is None and policy.cancel_window_s > 0 and alert["type"] == "fall"
                and source in FALL_SOURCES):
            out.events.append(("cancel_window_started", {"seconds": policy.cancel_window_s, "source": source,
                                                         "policy": policy.name}))
            out.changes.append({"change": "cancel_window", "seconds": policy.cancel_window_s})
            out.timer = {"origin_at": now, "phase": "cancel_window",
                         "due_at": now + timedelta(seconds=policy.cancel_window_s)}
            return out
        if timer["phase"] == "cancel_window":
            checkin = await self._checkin(alert)
            if checkin is not None:
                return await self._cancel_fall(job, checkin)
            out.events.append(("cancel_window_expired", {"seconds": policy.cancel_window_s}))
            origin = now  # the ladder's clock starts when people are first told
        if policy.quiet_hours and alert["severity"] in ("low", "medium") and self.config.quiet is not None:
            until = self.config.quiet.until(now)
            if until is not None:
                out.events.append(("delayed_quiet_hours", {"until": until.isoformat(), "step": timer["step"]}))
                out.timer = {"origin_at": origin + (until - now), "due_at": until, "phase": "ladder"}
                return out
        if timer["origin_at"] is None or timer["phase"] == "cancel_window":
            out.events.append(("policy", {"policy": policy.name, "steps": [s.name for s in policy.steps]}))
        return await self._ladder(job, policy, now, origin, out)

    async def _ladder(self, job: _Job, policy: Policy, now: datetime, origin: datetime, out: _Outcome) -> _Outcome:
        timer = job.timer
        index: int = timer["step"]
        reminder = index >= len(policy.steps)
        if reminder:
            r = policy.reminder
            if r is None or (r.max_count is not None and timer["reminders"] >= r.max_count):
                out.events.append(("ladder_finished", {"policy": policy.name, "reminders": timer["reminders"]}))
                out.delete = True
                return out
            step = Step(name="reminder", recipients=r.recipients, channels=r.channels, timeout_s=r.every_s)
            out.events.append(("reminder", {"number": timer["reminders"] + 1}))
        else:
            step = policy.steps[index]
            if index > 0:
                out.events.append(("escalated", {"to_step": index, "step_name": step.name,
                                                 "reason": timer["reason"] or "no_acknowledgement"}))
                out.changes.append({"change": "escalated", "step": index, "step_name": step.name})
        reached_all = await self._run_step(job, policy, step, index, now, "ladder", out)
        nxt: dict[str, Any] = {"step": index + 1, "origin_at": origin, "phase": "ladder",
                               "reason": "no_acknowledgement"}
        if reminder:
            nxt.update(due_at=now + timedelta(seconds=step.timeout_s), reminders=timer["reminders"] + 1)
        elif not reached_all:
            nxt.update(due_at=now, reason="delivery_failed")
        else:
            nxt["due_at"] = origin + timedelta(seconds=policy.offset_s(index + 1))
        out.timer = nxt
        return out

    async def _confirmed_dispatch(self, job: _Job, policy: Policy, now: datetime, origin: datetime) -> _Outcome:
        out = _Outcome()
        kind: str = job.timer["jump"]
        index = policy.dispatch_index()
        channels = policy.steps[index].channels if index is not None and kind in policy.steps[index].recipients \
            else []
        step = Step(name="confirmed_dispatch", recipients=[kind], channels=channels, timeout_s=0)
        out.events.append(("escalated", {"to_step": "confirmed_dispatch", "step_name": step.name,
                                         "reason": "emergency_confirmed"}))
        await self._run_step(job, policy, step, len(policy.steps), now, "confirmed", out)
        if job.alert["acknowledged_at"] is not None or policy.reminder is None:
            out.delete = True
        else:
            # The ladder's own dispatch step must not call a second time: go on with reminders.
            steps = len(policy.steps)
            out.timer = {"step": max(job.timer["step"], steps), "origin_at": origin, "phase": "ladder",
                         "due_at": now + timedelta(seconds=policy.reminder.every_s), "reason": "no_acknowledgement"}
        return out

    async def _run_step(self, job: _Job, policy: Policy, step: Step, index: int, now: datetime, cause: str,
                        out: _Outcome) -> bool:
        """Notify every recipient of the step; False when some recipient kind could not be reached at all."""
        alert = job.alert
        alert_id: int = alert["id"]
        async with self._pool.connection() as conn:
            resolved = await people.resolve(conn, step.recipients, alert["resident_id"], alert["region_path"],
                                            self.config.call_centre_phone)
            if "no_contacts" in resolved.notes:
                seen = await (await conn.execute(
                    "SELECT 1 FROM alert_events WHERE alert_id = %s AND kind = 'no_contacts'", (alert_id,)
                )).fetchone()
                if seen is None and not any(kind == "no_contacts" for kind, _ in out.events):
                    out.events.append(("no_contacts", {"resident_id": alert["resident_id"],
                                                       "instead": "operator"}))
                    out.changes.append({"change": "no_contacts"})
            missing = [n.removeprefix("no_") for n in resolved.notes if n != "no_contacts"]
            if missing:
                out.events.append(("recipients_missing", {"step_name": step.name, "kinds": missing}))
            records: dict[str, tuple[int, DispatchRecord]] = {}
            for kind in step.recipients:
                if kind in EMERGENCY_KINDS:
                    record = await build_record(conn, alert_id, kind, cause, now, self.config.tz)
                    records[kind] = (await save_record(conn, alert_id, record, cause), record)
        for kind, (dispatch_id, record) in records.items():
            out.events.append(("dispatch_record", {"dispatch_id": dispatch_id, "service": record.service,
                                                   "cause": cause, "text_zh": record.text_zh,
                                                   "text_en": record.text_en}))
            out.changes.append({"change": "dispatched", "dispatch_id": dispatch_id, "service": record.service})
            self._health.count(f"dispatch_{kind}")
        results = await asyncio.gather(*(
            self._deliver(alert, step, index, r, records.get(r.kind)) for r in resolved.recipients))
        reached_kinds: dict[str, bool] = {}
        delivered = failed = 0
        for recipient, attempts in zip(resolved.recipients, results, strict=True):
            ok = any(res.ok for res in attempts)
            reached_kinds[recipient.kind] = reached_kinds.get(recipient.kind, False) or ok
            for attempt_no, res in enumerate(attempts, start=1):
                details: dict[str, Any] = {
                    "step": index, "step_name": step.name, "policy": policy.name,
                    "recipient_kind": recipient.kind, "recipient_id": recipient.id, "channel": res.channel,
                    "result": "ok" if res.ok else "failed", "detail": res.detail, "latency_ms": res.latency_ms,
                    "attempts": res.attempts, "channel_order": attempt_no, "provider_id": res.provider_id,
                }
                if recipient.kind in records:
                    details["dispatch_id"] = records[recipient.kind][0]
                out.events.append(("notification", details))
                self._health.count(f"notification_{'ok' if res.ok else 'failed'}.{res.channel}")
                delivered += res.ok
                failed += not res.ok
        for kind, (dispatch_id, _) in records.items():
            out.dispatch_delivered.append((dispatch_id, reached_kinds.get(kind, False)))
        self._health.count("notifications_delivered", delivered)
        self._health.count("notifications_failed", failed)
        self._health.count("escalation_steps")
        self._health.count(f"escalation_step.{step.name}")
        out.changes.append({"change": "notified", "step": index, "step_name": step.name,
                            "delivered": delivered, "failed": failed})
        unreached = sorted(k for k, ok in reached_kinds.items() if not ok)
        if not resolved.recipients or unreached:
            out.events.append(("step_failed", {"step": index, "step_name": step.name,
                                               "unreached_kinds": unreached,
                                               "reason": "no_recipients" if not resolved.recipients
                                               else "delivery_failed"}))
            return False
        return True

    async def _deliver(self, alert: dict[str, Any], step: Step, index: int, recipient: Recipient,
                       record: tuple[int, DispatchRecord] | None) -> list[DeliveryResult]:
        """Try the recipient's channels in order until one delivers; every attempt's result is returned."""
        names = step.channels or self.config.routes[recipient.kind]
        title, text = self._message(alert, recipient, record)
        dispatch = None
        if record is not None:
            dispatch_id, rec = record
            dispatch = {**rec.data, "dispatch_id": dispatch_id, "read_out_zh": rec.text_zh,
                        "read_out_en": rec.text_en}
        results: list[DeliveryResult] = []
        for attempt, name in enumerate(names, start=1):
            channel = self.config.channels[name]
            notification = Notification(
                alert_id=alert["id"], alert_type=alert["type"], severity=alert["severity"], title=title, text=text,
                recipient=recipient, step=index, attempt=attempt, created_at=alert["created_at"],
                dispatch=dispatch, extra={"step_name": step.name, "region_path": alert["region_path"]},
                actions=self._links(alert["id"], recipient, channel.key) if record is None else None,
            )
            result = await channel.send(notification)
            results.append(result)
            if result.ok:
                break
        return results

    def _links(self, alert_id: int, recipient: Recipient, channel_key: str) -> dict[str, str] | None:
        """Signed Seen / On my way / page links, for people (contacts and users) on channels that show them."""
        links = self.config.links
        if links is None or channel_key not in LINK_CHANNELS or not recipient.id.startswith(LINK_RECIPIENTS):
            return None
        made = links.links(alert_id, recipient.id, channel_key)
        return made.as_dict() if made is not None else None

    def _message(self, alert: dict[str, Any], recipient: Recipient,
                 record: tuple[int, DispatchRecord] | None) -> tuple[str, str]:
        type_zh, type_en = TYPE_NAMES.get(alert["type"], (alert["type"], alert["type"]))
        if record is not None:
            return f"【{record[1].service}调度】{type_zh}", record[1].text_zh
        name = alert["resident_name"]
        at = alert["first_ts"].astimezone(self.config.tz).strftime("%H:%M")
        where = ""
        loc = alert["location"]
        if loc and loc.get("lat") is not None:
            where = f" 位置：北纬{loc['lat']:.5f}，东经{loc['lon']:.5f}。"
        text = (f"{name}（{alert['address']}）于 {at} 触发{type_zh}告警（{_SEVERITY_ZH.get(alert['severity'], '')}）。"
                f"{where}请尽快确认处理，告警编号 {alert['id']}。"
                f" / {type_en} alert for {name} at {at}; please acknowledge. Alert {alert['id']}.")
        return f"{type_zh}告警：{name}", text

    async def _checkin(self, alert: dict[str, Any]) -> dict[str, Any] | None:
        """An "I'm OK" check-in from any of the resident's devices since the fall."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            return await (await cur.execute(
                "SELECT e.device_id, e.ts FROM device_events e JOIN devices d ON d.id = e.device_id"
                " WHERE d.resident_id = %s AND e.kind = 'checkin'"
                " AND (e.ts >= %s OR e.received_at >= %s) ORDER BY e.ts LIMIT 1",
                (alert["resident_id"], alert["first_ts"], alert["created_at"]))).fetchone()

    async def _cancel_fall(self, job: _Job, checkin: dict[str, Any]) -> _Outcome:
        async with self._pool.connection() as conn:
            cancelled = await lifecycle.cancel_by_checkin(conn, job.alert["id"], checkin["device_id"],
                                                          checkin["ts"].isoformat())
        if cancelled:
            self._health.count("falls_cancelled")
        return _Outcome(delete=True)

    async def _record(self, job: _Job, out: _Outcome) -> None:
        """Write the timeline and feed, then move the timer on if this worker still holds the claim."""
        alert = job.alert
        alert_id = alert["id"]
        # Pipeline mode: the timeline, feed and timer statements go out together, one round trip in all.
        async with self._pool.connection() as conn, conn.transaction():
            async with conn.pipeline():
                for kind, details in out.events:
                    await add_event(conn, alert_id, kind, "engine", details)
                for dispatch_id, ok in out.dispatch_delivered:
                    await conn.execute("UPDATE alert_dispatches SET delivered = %s WHERE id = %s", (ok, dispatch_id))
                for change in out.changes:
                    await feed(conn, "alert", alert["region_path"], alert["resident_id"],
                               {"alert_id": alert_id, "type": alert["type"], "severity": alert["severity"], **change})
                if out.delete:
                    await conn.execute("DELETE FROM alert_timers WHERE alert_id = %s AND claimed_by = %s",
                                       (alert_id, job.token))
                    return
                t = {**{k: job.timer[k] for k in ("step", "due_at", "reminders", "origin_at", "phase", "reason")},
                     **out.timer}
                cur = await conn.execute(
                    "UPDATE alert_timers SET step = %(step)s, due_at = %(due_at)s, reminders = %(reminders)s,"
                    " origin_at = %(origin_at)s, phase = %(phase)s, reason = %(reason)s, jump = NULL,"
                    " claimed_by = NULL, claimed_until = NULL"
                    " WHERE alert_id = %(alert_id)s AND claimed_by = %(token)s",
                    {**t, "alert_id": alert_id, "token": job.token})
            if cur.rowcount == 0:
                # Acknowledged (row deleted) or confirmed as an emergency (row re-armed) meanwhile.
                log.info("escalation timer of alert %s changed while step ran; left as is", alert_id)

    async def aclose(self) -> None:
        """Close the channels (when `run` was never started)."""
        await self.config.aclose()

