"""Service-level figures per community and period: notification and acknowledgement times, dispatches, false alarms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

# Telecare answering standard: share of alarm calls answered within 60 s and within 180 s.
TARGET_60S = 0.975
TARGET_180S = 0.99
DEFAULT_SEVERITIES = ("critical",)

_FIGURES = """
WITH sel AS (
  SELECT a.id, a.region_path, a.type, a.created_at, a.acknowledged_at, a.resolution,
    (SELECT min(e.ts) FROM alert_events e
      WHERE e.alert_id = a.id AND e.kind = 'notification' AND e.details->>'result' = 'ok') AS first_notified,
    EXISTS (SELECT 1 FROM alert_dispatches d WHERE d.alert_id = a.id) AS dispatched,
    -- A fall the resident cancelled in the cancel window never needed anyone to answer.
    (a.acknowledged_at IS NULL AND a.resolution IS NOT DISTINCT FROM 'resident_fine') AS self_cancelled
  FROM alerts a
  WHERE a.created_at >= %(since)s AND a.created_at < %(until)s AND a.severity = ANY(%(severities)s)
    AND {where}
)
SELECT region_path AS community,
  count(*) AS alerts,
  count(*) FILTER (WHERE NOT self_cancelled) AS answerable,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_notified - created_at)) AS notify_p50,
  percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM first_notified - created_at)) AS notify_p95,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM acknowledged_at - created_at)) AS ack_p50,
  percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM acknowledged_at - created_at)) AS ack_p95,
  count(*) FILTER (WHERE acknowledged_at - created_at <= interval '60 seconds') AS ack_60,
  count(*) FILTER (WHERE acknowledged_at - created_at <= interval '180 seconds') AS ack_180,
  count(*) FILTER (WHERE acknowledged_at IS NULL AND NOT self_cancelled) AS unacknowledged,
  count(*) FILTER (WHERE dispatched) AS dispatched
FROM sel GROUP BY region_path ORDER BY region_path
"""

_FALSE_ALARMS = """
SELECT a.region_path AS community, a.type, count(*) AS closed,
  count(*) FILTER (WHERE a.resolution = 'false_alarm') AS false_alarms
FROM alerts a
WHERE a.created_at >= %(since)s AND a.created_at < %(until)s AND a.closed_at IS NOT NULL AND {where}
GROUP BY a.region_path, a.type ORDER BY a.region_path, a.type
"""


@dataclass
class FalseAlarms:
    """Closed alerts of one type and how many were false alarms."""

    closed: int
    false_alarms: int
    rate: float


@dataclass
class CommunitySla:
    """The figures of one community; times in seconds from the alert reaching the hub."""

    community: str
    alerts: int
    first_notification_p50_s: float | None
    first_notification_p95_s: float | None
    acknowledgement_p50_s: float | None
    acknowledgement_p95_s: float | None
    acknowledged_within_60s: float | None
    acknowledged_within_180s: float | None
    meets_60s_target: bool | None
    meets_180s_target: bool | None
    unacknowledged: int
    dispatched: int
    false_alarms_by_type: dict[str, FalseAlarms] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return asdict(self)


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def community_filter(community: str | None) -> tuple[str, dict[str, Any]]:
    """A WHERE fragment for a community (or a district/city: everything under it)."""
    if not community:
        return "TRUE", {}
    like = community.replace("%", r"\%").replace("_", r"\_") + "/%"
    return "(a.region_path = %(community)s OR a.region_path LIKE %(community_like)s)", {
        "community": community, "community_like": like}


async def sla_report(conn: AsyncConnection[Any], since: datetime, until: datetime, community: str | None = None,
                     scope: tuple[str, dict[str, Any]] = ("TRUE", {}),
                     severities: Sequence[str] = DEFAULT_SEVERITIES) -> list[CommunitySla]:
    """Figures per community for alerts created in [since, until) of the given severities, within `scope`."""
    cwhere, cparams = community_filter(community)
    swhere, sparams = scope
    where = f"{cwhere} AND {swhere}"
    params = {"since": since, "until": until, "severities": list(severities), **cparams, **sparams}
    cur = conn.cursor(row_factory=dict_row)
    rows = await (await cur.execute(_FIGURES.format(where=where), params)).fetchall()
    out: dict[str, CommunitySla] = {}
    for row in rows:
        answerable = row["answerable"]
        within_60 = row["ack_60"] / answerable if answerable else None
        within_180 = row["ack_180"] / answerable if answerable else None
        out[row["community"]] = CommunitySla(
            community=row["community"], alerts=row["alerts"],
            first_notification_p50_s=_r(row["notify_p50"]), first_notification_p95_s=_r(row["notify_p95"]),
            acknowledgement_p50_s=_r(row["ack_p50"]), acknowledgement_p95_s=_r(row["ack_p95"]),
            acknowledged_within_60s=_r(within_60), acknowledged_within_180s=_r(within_180),
            meets_60s_target=None if within_60 is None else within_60 >= TARGET_60S,
            meets_180s_target=None if within_180 is None else within_180 >= TARGET_180S,
            unacknowledged=row["unacknowledged"], dispatched=row["dispatched"],
        )
    fa_rows = await (await cur.execute(_FALSE_ALARMS.format(where=where), params)).fetchall()
    for row in fa_rows:
        sla = out.setdefault(row["community"], CommunitySla(row["community"], 0, None, None, None, None, None, None,
                                                            None, None, 0, 0))
        sla.false_alarms_by_type[row["type"]] = FalseAlarms(row["closed"], row["false_alarms"],
                                                            round(row["false_alarms"] / row["closed"], 3))
    return [out[k] for k in sorted(out)]


def render_table(report: Sequence[CommunitySla]) -> str:
    """A plain-text table for the terminal."""
    def num(value: float | None, pct: bool = False) -> str:
        if value is None:
            return "-"
        return f"{value * 100:.1f}%" if pct else f"{value:.1f}"

    head = (f"{'community':<28}{'alerts':>7}{'notify p50':>11}{'p95':>8}{'ack p50':>9}{'p95':>8}"
            f"{'≤60s':>8}{'≤180s':>8}{'unacked':>8}{'dispatch':>9}")
    lines = [head, "-" * len(head)]
    for s in report:
        lines.append(
            f"{s.community:<28}{s.alerts:>7}{num(s.first_notification_p50_s):>11}{num(s.first_notification_p95_s):>8}"
            f"{num(s.acknowledgement_p50_s):>9}{num(s.acknowledgement_p95_s):>8}"
            f"{num(s.acknowledged_within_60s, True):>8}{num(s.acknowledged_within_180s, True):>8}"
            f"{s.unacknowledged:>8}{s.dispatched:>9}")
        for alert_type, fa in sorted(s.false_alarms_by_type.items()):
            lines.append(f"    false alarms {alert_type:<22}{fa.false_alarms}/{fa.closed} ({fa.rate * 100:.1f}%)")
    lines.append(f"targets: ≥{TARGET_60S * 100:.1f}% within 60 s, ≥{TARGET_180S * 100:.0f}% within 180 s")
    return "\n".join(lines)
