"""The emergency dispatch record (who, where, what happened) and the text a 120/110 dispatcher reads out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

SERVICES = {"emergency_120": "120", "emergency_110": "110"}
# A fix younger than this at dispatch time is read out as the live location.
LIVE_MAX_AGE_S = 300
DISPATCH_OUTCOMES = (
    "ambulance_sent",
    "police_sent",
    "resident_reached",
    "not_needed",
    "call_failed",
    "other",
)
TYPE_NAMES: dict[str, tuple[str, str]] = {
    "sos": ("紧急求助（SOS）", "SOS emergency call"),
    "fall": ("跌倒", "fall"),
    "possible_fall": ("疑似跌倒", "possible fall"),
    "smoke": ("烟雾报警", "smoke alarm"),
    "water_leak": ("漏水", "water leak"),
    "inactivity": ("长时间无活动", "prolonged inactivity"),
    "no_morning_activity": ("早晨无活动", "no morning activity"),
    "not_home": ("未按时回家", "not home when expected"),
    "wandering": ("走失（离开安全区域）", "wandering (left the safe area)"),
    "night_door": ("夜间开门", "door opened at night"),
    "long_bathroom": ("如厕时间过长", "long time in the bathroom"),
    "missed_checkin": ("未报平安", "missed check-in"),
    "device_offline": ("设备离线", "device offline"),
    "low_battery": ("电量低", "low battery"),
    "device_removed": ("设备被摘下", "device removed"),
    "tamper": ("设备被拆", "device tampered with"),
    "power_off": ("设备关机", "device switched off"),
}
_LOCATION_WORDS = {
    "live": ("实时定位", "live location"),
    "last_known": ("最后已知位置", "last known location"),
    "home_address": ("住址坐标（非实时）", "home address coordinates (not live)"),
}
_GENDER = {"f": ("女", "female"), "female": ("女", "female"), "m": ("男", "male"), "male": ("男", "male")}


@dataclass(frozen=True)
class DispatchRecord:
    """The record as data (sent to the telephony gateway) and rendered in Chinese and English."""

    service: str
    data: dict[str, Any]
    text_zh: str
    text_en: str


def _ts(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def pick_location(alert: dict[str, Any], statuses: list[dict[str, Any]], now: datetime) -> dict[str, Any] | None:
    """The newest position fix (alarm message, device status, last known) or else the home coordinates."""
    candidates: list[tuple[datetime, dict[str, Any], str]] = []
    if alert.get("location"):
        candidates.append((alert["last_ts"], alert["location"], "alarm"))
    for status in statuses:
        loc = status.get("last_location")
        if loc and loc.get("lat") is not None:
            candidates.append((_ts(loc.get("ts")) or status["updated_at"], loc, f"device {status['device_id']}"))
    last_known = (alert.get("details") or {}).get("last_known_location")
    if isinstance(last_known, dict) and last_known.get("lat") is not None:
        candidates.append((_ts(last_known.get("ts")) or alert["first_ts"], last_known, "device memory"))
    if candidates:
        at, loc, origin = max(candidates, key=lambda c: c[0])
        age = max(0.0, (now - at).total_seconds())
        return {"lat": loc["lat"], "lon": loc["lon"], "acc_m": loc.get("acc_m"), "src": loc.get("src"),
                "ts": at.isoformat(), "age_s": round(age), "origin": origin,
                "kind": "live" if age <= LIVE_MAX_AGE_S else "last_known"}
    if alert.get("lat") is not None and alert.get("lon") is not None:
        return {"lat": alert["lat"], "lon": alert["lon"], "acc_m": None, "src": "address", "ts": None,
                "age_s": None, "origin": "household", "kind": "home_address"}
    return None


async def build_record(conn: AsyncConnection[Any], alert_id: int, kind: str, cause: str, now: datetime,
                       tz: ZoneInfo) -> DispatchRecord:
    """Gather the resident, place, contacts and alert history into a dispatch record for 120 or 110."""
    cur = conn.cursor(row_factory=dict_row)
    alert = await (await cur.execute(
        "SELECT a.id, a.type, a.severity, a.first_ts, a.last_ts, a.created_at, a.source_device, a.location,"
        " a.details, a.region_path, a.acknowledged_at, r.id AS resident_id, r.name, r.birth_year, r.gender,"
        " r.phone, r.medical_notes, r.risk_flags, h.address, h.lat, h.lon, d.type AS device_type,"
        " reg.name AS region_name"
        " FROM alerts a JOIN residents r ON r.id = a.resident_id JOIN households h ON h.id = a.household_id"
        " LEFT JOIN devices d ON d.id = a.source_device LEFT JOIN regions reg ON reg.path = a.region_path"
        " WHERE a.id = %s", (alert_id,))).fetchone()
    if alert is None:
        raise LookupError(f"alert {alert_id} not found")
    statuses = await (await cur.execute(
        "SELECT s.device_id, s.last_location, s.updated_at FROM device_status s JOIN devices d ON d.id = s.device_id"
        " WHERE d.resident_id = %s AND s.last_location IS NOT NULL", (alert["resident_id"],))).fetchall()
    contacts = await (await cur.execute(
        "SELECT name, relation, phone FROM contacts WHERE resident_id = %s ORDER BY position LIMIT 3",
        (alert["resident_id"],))).fetchall()
    events = await (await cur.execute(
        "SELECT kind, details FROM alert_events WHERE alert_id = %s ORDER BY id", (alert_id,))).fetchall()
    reached: dict[str, int] = {}
    failed = 0
    for e in events:
        if e["kind"] == "notification":
            if e["details"].get("result") == "ok":
                kind_ = e["details"].get("recipient_kind", "?")
                reached[kind_] = reached.get(kind_, 0) + 1
            else:
                failed += 1
    service = SERVICES[kind]
    data: dict[str, Any] = {
        "service": service,
        "cause": cause,
        "alert": {"id": alert_id, "type": alert["type"], "severity": alert["severity"],
                  "raised_at": alert["created_at"].isoformat(), "device": alert["source_device"],
                  "device_type": alert["device_type"]},
        "resident": {"id": alert["resident_id"], "name": alert["name"],
                     "age": now.year - alert["birth_year"] if alert["birth_year"] else None,
                     "gender": alert["gender"], "phone": alert["phone"],
                     "medical_notes": alert["medical_notes"], "risk_flags": list(alert["risk_flags"])},
        "address": alert["address"],
        "region": {"path": alert["region_path"], "name": alert["region_name"]},
        "location": pick_location(alert, statuses, now),
        "contacts": [dict(c) for c in contacts],
        "callback": next((c["phone"] for c in contacts if c["phone"]), alert["phone"]),
        "history": {"notified": reached, "failed_attempts": failed,
                    "acknowledged": alert["acknowledged_at"] is not None,
                    "elapsed_s": round((now - alert["created_at"]).total_seconds())},
    }
    return DispatchRecord(service, data, render_zh(data, tz), render_en(data, tz))


def _clock(iso: str | None, tz: ZoneInfo) -> str:
    at = _ts(iso)
    return at.astimezone(tz).strftime("%H:%M:%S") if at else "?"


def _elapsed(seconds: float, sec_unit: str, min_unit: str) -> str:
    return f"{round(seconds)}{sec_unit}" if seconds < 120 else f"{round(seconds / 60)}{min_unit}"


def render_zh(data: dict[str, Any], tz: ZoneInfo) -> str:
    """The Chinese read-out for the dispatcher."""
    r, a, h = data["resident"], data["alert"], data["history"]
    type_name = TYPE_NAMES.get(a["type"], (a["type"], a["type"]))[0]
    gender = _GENDER.get((r["gender"] or "").lower(), ("", ""))[0]
    person = "，".join(p for p in (r["name"], gender, f"{r['age']}岁" if r["age"] else "") if p)
    parts = [f"【{data['service']}调度】{type_name}。老人：{person}。", f"地址：{data['address'] or '未登记'}。"]
    loc = data["location"]
    if loc:
        words = _LOCATION_WORDS[loc["kind"]][0]
        acc = f"，精度{round(loc['acc_m'])}米" if loc.get("acc_m") else ""
        when = f"，{_clock(loc['ts'], tz)}" if loc.get("ts") else ""
        parts.append(f"位置：{words} 北纬{loc['lat']:.5f}，东经{loc['lon']:.5f}{acc}{when}。")
    else:
        parts.append("位置：未知。")
    if r["medical_notes"]:
        parts.append(f"病史：{r['medical_notes']}。")
    device = f"，设备{a['device']}" if a["device"] else ""
    notified = "、".join(f"{_KIND_ZH.get(k, k)}{n}人" for k, n in h["notified"].items()) or "无人"
    ack = "已有人确认" if h["acknowledged"] else f"{_elapsed(h['elapsed_s'], '秒', '分钟')}内无人确认"
    parts.append(f"事件：{_clock(a['raised_at'], tz)}{device}报警，已通知{notified}，{ack}。")
    if data["contacts"]:
        people = "；".join(f"{c['name']}（{c['relation']}）{c['phone'] or ''}" if c["relation"]
                          else f"{c['name']} {c['phone'] or ''}" for c in data["contacts"])
        parts.append(f"紧急联系人：{people}。")
    if data["callback"]:
        parts.append(f"回拨电话：{data['callback']}。")
    parts.append(f"告警编号{a['id']}。")
    return "".join(parts)


_KIND_ZH = {"family": "家属", "community_worker": "社区工作者", "duty_officer": "值班员", "call_centre": "呼叫中心",
            "operator": "平台值班员", "emergency_120": "120", "emergency_110": "110"}


def render_en(data: dict[str, Any], tz: ZoneInfo) -> str:
    """The English read-out for the dispatcher."""
    r, a, h = data["resident"], data["alert"], data["history"]
    type_name = TYPE_NAMES.get(a["type"], (a["type"], a["type"]))[1]
    gender = _GENDER.get((r["gender"] or "").lower(), ("", ""))[1]
    person = ", ".join(p for p in (r["name"], gender, f"{r['age']} years old" if r["age"] else "") if p)
    lines = [f"[{data['service']} dispatch] {type_name}. Resident: {person}.",
             f"Address: {data['address'] or 'not registered'}."]
    loc = data["location"]
    if loc:
        words = _LOCATION_WORDS[loc["kind"]][1]
        acc = f", accuracy {round(loc['acc_m'])} m" if loc.get("acc_m") else ""
        when = f", at {_clock(loc['ts'], tz)}" if loc.get("ts") else ""
        lines.append(f"Location: {words} {loc['lat']:.5f} N, {loc['lon']:.5f} E{acc}{when}.")
    else:
        lines.append("Location: unknown.")
    if r["medical_notes"]:
        lines.append(f"Medical notes: {r['medical_notes']}.")
    device = f" from device {a['device']}" if a["device"] else ""
    notified = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in h["notified"].items()) or "nobody"
    ack = "acknowledged" if h["acknowledged"] else f"no acknowledgement in {_elapsed(h['elapsed_s'], ' s', ' min')}"
    lines.append(f"What happened: alarm at {_clock(a['raised_at'], tz)}{device}; notified {notified}; {ack}.")
    if data["contacts"]:
        people = "; ".join(f"{c['name']} ({c['relation']}) {c['phone'] or ''}".replace(" ()", "").strip()
                           for c in data["contacts"])
        lines.append(f"Emergency contacts: {people}.")
    if data["callback"]:
        lines.append(f"Call back: {data['callback']}.")
    lines.append(f"Alert {a['id']}.")
    return " ".join(lines)


async def save_record(conn: AsyncConnection[Any], alert_id: int, record: DispatchRecord, cause: str) -> int:
    """Store the record; returns its id (the operator records the outcome against it)."""
    cur = await conn.execute(
        "INSERT INTO alert_dispatches (alert_id, service, cause, record, text_zh, text_en)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (alert_id, record.service, cause, Jsonb(record.data), record.text_zh, record.text_en))
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])
