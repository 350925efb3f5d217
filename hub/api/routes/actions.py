"""Public action links: "收到 / Seen" and "我去处理 / On my way" from a notification, without a login.

`GET /a/{alert}/{token}` shows a phone-sized page (zh-CN and English): who, where, when, and the alert's
state. With `?do=seen|coming` the page carries a form that its script posts at once: the action happens on
that POST, never on the GET, so a messenger's link preview cannot acknowledge an alert nobody has read.
`POST /a/sms-inbound` takes SMS replies from the gateway ("1" = seen, "2" = on my way), checked by a
shared secret. Every refusal (forged, expired, other alert, reused, closed) is recorded.
"""

from __future__ import annotations

import hmac
import logging
import re
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Header, HTTPException, Path, Query, Request, status
from fastapi.responses import HTMLResponse
from psycopg import AsyncConnection
from pydantic import BaseModel

from alerts import lifecycle
from alerts.actions import ActionLinks, Claim, record_refusal, use_once
from alerts.dispatch import TYPE_NAMES
from alerts.errors import AlertError, LinkRefused, TransitionConflict
from alerts.lifecycle import Actor
from hub.api.deps import HubDep
from hub.api.schemas import fetch_one
from hub.ratelimit import SlidingWindow
from hub.users import User

if TYPE_CHECKING:
    from hub.service import Hub

router = APIRouter(prefix="/a", tags=["action links"])
log = logging.getLogger(__name__)

# Bad links a minute from one address: beyond it they are refused unrecorded (the limit bounds the audit
# writes of a flood). Only failures count, so genuine links keep working behind a shared proxy address.
FAILURES_PER_ADDRESS = (30, 60.0)
PER_LINK = (10, 60.0)  # requests a minute for one genuine link (alert and recipient)
REFUSALS = {  # reason -> (HTTP status, zh, en)
    "forged": (403, "链接无效。", "This link is not valid."),
    "other_alert": (403, "此链接不属于该告警。", "This link belongs to another alert."),
    "expired": (410, "链接已过期。", "This link has expired."),
    "closed": (410, "该告警已结束处理。", "This alert has already been closed."),
    "reused": (409, "您已经回复过了，无需重复操作。", "You have already answered; nothing more to do."),
    "unknown_recipient": (403, "链接的接收人已不存在。", "The person this link was sent to is no longer listed."),
    "not_allowed": (403, "您不能执行此操作。", "You may not do this."),
    "rate_limited": (429, "请求过于频繁，请稍后再试。", "Too many requests; please try again in a minute."),
}
DONE = {
    ("seen", True): ("已确认收到，通知升级已停止。", "Marked as seen: the escalation has stopped."),
    ("seen", False): ("已记录您已看到（此前已有人确认）。",
                      "Noted that you have seen it (someone had already answered)."),
    ("coming", True): ("已记录：您正在前往处理。", "Recorded: you are on your way."),
    ("coming", False): ("已记录：您正在前往处理。", "Recorded: you are on your way."),
}
_CONTACT = re.compile(r"^contact-(.+)-(\d+)$")
_USER = re.compile(r"^user-(\d+)$")


def _limits(request: Request) -> tuple[SlidingWindow, SlidingWindow]:
    state = request.app.state
    if getattr(state, "action_limits", None) is None:
        state.action_limits = (SlidingWindow(*FAILURES_PER_ADDRESS), SlidingWindow(*PER_LINK))
    limits: tuple[SlidingWindow, SlidingWindow] = state.action_limits
    return limits


def _signer(hub: Hub) -> ActionLinks:
    links = hub.engine.config.links
    if links is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "action links are not enabled")
    return links


async def _actor(conn: AsyncConnection[Any], recipient_id: str, via: str) -> Actor:
    """The contact or user a link was sent to, as they are now."""
    if match := _CONTACT.match(recipient_id):
        resident, position = match.group(1), int(match.group(2))
        row = await fetch_one(conn, "SELECT name FROM contacts WHERE resident_id = %s AND position = %s",
                              (resident, position))
        if row is not None:
            return Actor.of_contact(recipient_id, row["name"], resident, via)
    elif match := _USER.match(recipient_id):
        row = await fetch_one(conn, "SELECT id, username, role, scope_path, resident_id, display_name FROM users"
                              " WHERE id = %s AND NOT disabled", (int(match.group(1)),))
        if row is not None:
            return Actor.of_user(User(**row), via)
    raise LinkRefused("unknown_recipient")


async def _alert(conn: AsyncConnection[Any], alert_id: int) -> dict[str, Any] | None:
    return await fetch_one(
        conn, "SELECT a.id, a.type, a.severity, a.first_ts, a.acknowledged_at, a.closed_at, a.resolution,"
        " r.name AS resident_name, h.address, p.state AS response_state,"
        " (SELECT e.actor FROM alert_events e WHERE e.alert_id = a.id AND e.kind IN ('acknowledged', 'accepted')"
        "  ORDER BY e.id LIMIT 1) AS acknowledged_by"
        " FROM alerts a JOIN residents r ON r.id = a.resident_id JOIN households h ON h.id = a.household_id"
        " LEFT JOIN alert_responses p ON p.alert_id = a.id WHERE a.id = %s", (alert_id,))


async def _perform(conn: AsyncConnection[Any], claim: Claim, action: str, via: str) -> bool:
    """Run one action once for the link's recipient; True when it changed the alert (first acknowledgement)."""
    actor = await _actor(conn, claim.recipient_id, via)
    if not await use_once(conn, claim, action):
        raise LinkRefused("reused")
    try:
        if action == "seen":
            return await lifecycle.acknowledge(conn, claim.alert_id, actor)
        await lifecycle.on_my_way(conn, claim.alert_id, actor)
        return True
    except TransitionConflict as err:
        raise LinkRefused("closed" if "closed" in str(err) else "not_allowed", str(err)) from None
    except AlertError as err:
        raise LinkRefused("not_allowed", str(err)) from None


def _genuine(err: LinkRefused, claim: Claim | None) -> Claim | None:
    """The claim of a genuine link for this alert (its refusal goes on the timeline), else None."""
    if err.reason in ("forged", "other_alert"):
        return None
    return claim if claim is not None else err.claim if isinstance(err.claim, Claim) else None


async def _refuse(hub: Hub, alert_id: int, err: LinkRefused, action: str | None, claim: Claim | None) -> None:
    """Record a refusal in a transaction of its own (the refused one was rolled back)."""
    if err.reason == "rate_limited":
        return  # not recorded: the limit is what keeps a flood of bad links from flooding the audit log
    async with hub.pool.connection() as conn:
        await record_refusal(conn, alert_id, err.reason, action, claim)
    log.info("action link refused alert_id=%s reason=%s", alert_id, err.reason)


def _verify(request: Request, hub: Hub, alert_id: int, token: str) -> Claim:
    """Check the signature, then the rate limits: per address for bad links, per link for good ones."""
    failures, per_link = _limits(request)
    try:
        claim = _signer(hub).verify(alert_id, token)
    except LinkRefused:
        if not failures.allow(request.client.host if request.client else "?"):
            raise LinkRefused("rate_limited") from None
        raise
    if not per_link.allow(f"{claim.alert_id}:{claim.recipient_id}"):
        raise LinkRefused("rate_limited")
    return claim


@router.get("/{alert_id}/{token}", response_class=HTMLResponse, include_in_schema=False)
async def open_link(request: Request, alert_id: int, token: Annotated[str, Path(max_length=200)], hub: HubDep,
                    do: Annotated[str | None, Query(pattern="^(seen|coming)$")] = None) -> HTMLResponse:
    """The page a link opens: the alert, and for ?do= a form its script submits at once."""
    claim: Claim | None = None
    try:
        claim = _verify(request, hub, alert_id, token)
        async with hub.pool.connection() as conn:
            alert = await _alert(conn, alert_id)
            if alert is None:
                raise LinkRefused("forged")
            if alert["closed_at"] is not None:
                raise LinkRefused("closed")
            used = await fetch_one(conn, "SELECT 1 AS used FROM action_link_uses WHERE alert_id = %s"
                                   " AND recipient_id = %s AND action = %s", (alert_id, claim.recipient_id, do))
    except LinkRefused as err:
        await _refuse(hub, alert_id, err, do, _genuine(err, claim))
        return _page(hub, None, refusal=err.reason)
    return _page(hub, alert, form=do if do and not used else None, already=bool(used))


@router.post("/{alert_id}/{token}", response_class=HTMLResponse, include_in_schema=False)
async def act(request: Request, alert_id: int, token: Annotated[str, Path(max_length=200)], hub: HubDep,
              action: Annotated[str, Form(pattern="^(seen|coming)$")]) -> HTMLResponse:
    """Do the action, once, for the link's recipient; the page shows what happened."""
    claim: Claim | None = None
    try:
        claim = _verify(request, hub, alert_id, token)
        async with hub.pool.connection() as conn:
            changed = await _perform(conn, claim, action, claim.via)
            alert = await _alert(conn, alert_id)
    except LinkRefused as err:
        await _refuse(hub, alert_id, err, action, _genuine(err, claim))
        return _page(hub, None, refusal=err.reason)
    return _page(hub, alert, done=DONE[(action, changed)])


class InboundResult(BaseModel):
    """What the hub did with a reply."""

    result: str
    alert_id: int | None = None


def _digits(phone: str) -> str:
    digits = re.sub(r"\D", "", phone)
    return digits[2:] if len(digits) == 13 and digits.startswith("86") else digits  # +86 138... -> 138...


async def _inbound_fields(request: Request) -> tuple[str, str]:
    """(sender, text) from a JSON or form body; gateways name them from/phone/mobile and text/content."""
    try:
        if request.headers.get("content-type", "").startswith("application/json"):
            data = await request.json()
        else:
            data = dict(await request.form())
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "send a JSON object or a form")
    phone = next((data[k] for k in ("from", "phone", "mobile") if isinstance(data.get(k), str)), "")
    text = next((data[k] for k in ("text", "content") if isinstance(data.get(k), str)), None)
    if not 3 <= len(phone) <= 32 or text is None or len(text) > 500:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "need from (the sender's number) and text (the reply)")
    return phone, text


@router.post("/sms-inbound", response_model=InboundResult, summary="SMS replies from the gateway (shared secret)",
             openapi_extra={"requestBody": {"content": {"application/json": {"schema": {
                 "type": "object", "required": ["from", "text"],
                 "properties": {"from": {"type": "string"}, "text": {"type": "string"}}}}}}})
async def sms_inbound(request: Request, hub: HubDep,
                      x_eldercare_secret: Annotated[str | None, Header(max_length=200)] = None,
                      secret: Annotated[str | None, Query(max_length=200)] = None) -> InboundResult:
    """A reply to the hub's SMS: "1" acknowledges (seen), "2" is on my way, for the sender's latest open alert."""
    expected = hub.settings.sms_inbound_secret
    if expected is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "SMS replies are not enabled")
    given = x_eldercare_secret or secret or ""
    if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
        async with hub.pool.connection() as conn:
            await record_refusal(conn, None, "bad_inbound_secret", None, None)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "wrong shared secret")
    phone, text = await _inbound_fields(request)
    reply = text.strip()
    action = {"1": "seen", "2": "coming"}.get(reply[:1]) if reply else None
    if action is None:
        return InboundResult(result="ignored")
    async with hub.pool.connection() as conn:
        found = await fetch_one(
            conn, "SELECT a.id AS alert_id, e.details->>'recipient_id' AS recipient_id"
            " FROM alerts a JOIN alert_events e ON e.alert_id = a.id AND e.kind = 'notification'"
            " WHERE a.closed_at IS NULL AND e.details->>'result' = 'ok' AND e.details->>'recipient_id' IN ("
            "   SELECT 'contact-' || resident_id || '-' || position FROM contacts"
            "    WHERE regexp_replace(regexp_replace(phone, '\\D', '', 'g'), '^86(\\d{11})$', '\\1') = %(p)s"
            "   UNION ALL SELECT 'user-' || id FROM users"
            "    WHERE regexp_replace(regexp_replace(phone, '\\D', '', 'g'), '^86(\\d{11})$', '\\1') = %(p)s)"
            " ORDER BY e.id DESC LIMIT 1", {"p": _digits(phone)})
    if found is None:
        return InboundResult(result="no_open_alert")
    claim = Claim(found["alert_id"], found["recipient_id"], "sms", 0)
    try:
        async with hub.pool.connection() as conn:
            changed = await _perform(conn, claim, action, "sms-reply")
    except LinkRefused as err:
        await _refuse(hub, claim.alert_id, err, action, claim)
        return InboundResult(result=err.reason, alert_id=claim.alert_id)
    return InboundResult(result=("acknowledged" if changed else "seen") if action == "seen" else "on_my_way",
                         alert_id=claim.alert_id)


def _page(hub: Hub, alert: dict[str, Any] | None, *, form: str | None = None, done: tuple[str, str] | None = None,
          already: bool = False, refusal: str | None = None) -> HTMLResponse:
    """The phone-sized page, zh-CN first and English under it."""
    code = 200
    parts: list[str] = []
    if refusal is not None:
        code, zh, en = REFUSALS.get(refusal, REFUSALS["forged"])
        parts.append(f'<p class="result refused" data-result="{escape(refusal)}">{escape(zh)}<br>'
                     f'<span lang="en">{escape(en)}</span></p>')
    if alert is not None:
        tz = ZoneInfo(hub.settings.local_timezone)
        at: datetime = alert["first_ts"].astimezone(tz)
        type_zh, type_en = TYPE_NAMES.get(alert["type"], (alert["type"], alert["type"]))
        if alert["closed_at"] is not None:
            state = ("已结束", "Closed")
        elif alert["acknowledged_at"] is not None:
            state = (f"已确认（{alert['acknowledged_by'] or ''}）", f"Acknowledged ({alert['acknowledged_by'] or ''})")
        else:
            state = ("等待确认", "Waiting for someone to answer")
        parts.append(
            f'<h1>{escape(type_zh)} <span lang="en">{escape(type_en)}</span></h1><dl>'
            f'<dt>老人 <span lang="en">Elder</span></dt><dd data-field="name">{escape(alert["resident_name"])}</dd>'
            f'<dt>地点 <span lang="en">Place</span></dt><dd data-field="place">{escape(alert["address"] or "")}</dd>'
            f'<dt>时间 <span lang="en">Time</span></dt><dd data-field="time">{at:%Y-%m-%d %H:%M}</dd>'
            f'<dt>状态 <span lang="en">State</span></dt><dd data-field="state">{escape(state[0])}'
            f' <span lang="en">{escape(state[1])}</span></dd></dl>')
        if done is not None:
            parts.append(f'<p class="result done" data-result="done">{escape(done[0])}<br>'
                         f'<span lang="en">{escape(done[1])}</span></p>')
        if already:
            zh, en = REFUSALS["reused"][1:]
            parts.append(f'<p class="result" data-result="already">{escape(zh)}<br><span lang="en">{escape(en)}</span>'
                         '</p>')
        if form is not None and alert["closed_at"] is None:
            zh, en = {"seen": ("收到", "Seen"), "coming": ("我去处理", "On my way")}[form]
            # The script submits this at once; without scripts the button does.
            parts.append(f'<form method="post" id="act" data-auto="1"><input type="hidden" name="action"'
                         f' value="{escape(form)}"><button type="submit">{escape(zh)} / {escape(en)}</button></form>')
        elif alert["closed_at"] is None and done is None and not already:
            parts.append('<form method="post" class="choices">'
                         '<button type="submit" name="action" value="seen">收到 / Seen</button>'
                         '<button type="submit" name="action" value="coming">我去处理 / On my way</button></form>')
    body = "\n".join(parts)
    html = ('<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="robots" content="noindex"><title>颐养告警 / Eldercare alert</title>'
            '<link rel="stylesheet" href="/static/action.css"><script src="/static/action.js" defer></script>'
            f'</head><body><main>{body}</main></body></html>')
    return HTMLResponse(html, status_code=code, headers={"Cache-Control": "no-store"})

