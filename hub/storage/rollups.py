"""Hourly activity and vitals series: continuous aggregates on the Community edition, raw queries elsewhere.

The history API and the home baselines read the same two series. On the Community edition they come
from continuous aggregates with real-time aggregation (materialised hours plus the raw rows after the
last refresh), so a 30-day history reads ~720 rows per resident instead of every event. Elsewhere the
same SQL shape runs over the raw hypertables (time_bucket) or plain tables (date_trunc in UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ACTIVITY = "activity_hourly"
VITALS = "vitals_hourly"

# What counts as "the resident was active" for the home baselines (hub/detection/home.py keeps its own
# copy of this rule in its raw query; both must agree).
ACTIVITY_RULE = ("kind IN ('door', 'bed', 'checkin') OR (kind = 'motion' AND data->>'motion' = 'true')"
                 " OR (kind = 'radar' AND data->>'presence' = 'true')")

DEFINITIONS = {
    ACTIVITY: ("device_events",
               " SELECT time_bucket(interval '1 hour', ts) AS bucket, resident_id, kind, count(*) AS events,"  # noqa: S608
               f" count(*) FILTER (WHERE {ACTIVITY_RULE}) AS active FROM device_events GROUP BY 1, 2, 3"),
    VITALS: ("readings", """
SELECT time_bucket(interval '1 hour', ts) AS bucket, resident_id, metric,
       sum(value) AS total, count(*) AS n, min(value) AS min, max(value) AS max
FROM readings GROUP BY 1, 2, 3"""),
}

Bucket = Literal["hour", "day"]


@dataclass(frozen=True)
class Source:
    """Where the hourly series are read from: the continuous aggregates, the hypertables, or plain tables."""

    timescaledb: bool
    aggregates: frozenset[str] = frozenset()

    def _trunc(self, bucket: Bucket, col: str) -> str:
        if self.timescaledb:
            return f"time_bucket(interval '1 {bucket}', {col})"
        # date_trunc follows the session's time zone; time_bucket's buckets are UTC: pin it so both agree.
        return f"date_trunc('{bucket}', {col}, 'UTC')"

    def activity_sql(self, bucket: Bucket) -> str:
        """(bucket, kind, n) for %(rid)s over whole buckets since now() - %(span)s."""
        start = self._trunc(bucket, "now() - %(span)s")
        if ACTIVITY in self.aggregates:
            return (f"SELECT {self._trunc(bucket, 'bucket')} AS bucket, kind, sum(events)::bigint AS n"  # noqa: S608
                    f" FROM {ACTIVITY} WHERE resident_id = %(rid)s AND bucket >= {start} GROUP BY 1, 2 ORDER BY 1, 2")
        return (f"SELECT {self._trunc(bucket, 'ts')} AS bucket, kind, count(*) AS n FROM device_events"  # noqa: S608
                f" WHERE resident_id = %(rid)s AND ts >= {start} GROUP BY 1, 2 ORDER BY 1, 2")

    def vitals_sql(self, bucket: Bucket, one_metric: bool) -> str:
        """(ts, metric, avg, min, max, n) for %(rid)s (and %(metric)s) over whole buckets since now() - %(span)s."""
        start = self._trunc(bucket, "now() - %(span)s")
        metric = " AND metric = %(metric)s" if one_metric else ""
        if VITALS in self.aggregates:
            return (f"SELECT {self._trunc(bucket, 'bucket')} AS ts, metric, sum(total) / sum(n) AS avg,"  # noqa: S608
                    f" min(min) AS min, max(max) AS max, sum(n)::bigint AS n FROM {VITALS}"
                    f" WHERE resident_id = %(rid)s AND bucket >= {start}{metric}"
                    " GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 10000")
        return (f"SELECT {self._trunc(bucket, 'ts')} AS ts, metric, avg(value) AS avg, min(value) AS min,"  # noqa: S608
                f" max(value) AS max, count(*) AS n FROM readings"
                f" WHERE resident_id = %(rid)s AND ts >= {start}{metric}"
                " GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 10000")

    def hourly_activity_sql(self) -> str:
        """(resident_id, bucket, events) of activity events per whole hour for %(rids)s since %(since)s (baselines).

        hub/detection/home.py can read its baseline from this instead of its own raw query; on the Community
        edition that reads the continuous aggregate (one row per resident-hour-kind).
        """
        start = self._trunc("hour", "%(since)s::timestamptz")
        if ACTIVITY in self.aggregates:
            return (f"SELECT resident_id, bucket, sum(active)::bigint AS events FROM {ACTIVITY}"  # noqa: S608
                    f" WHERE resident_id = ANY(%(rids)s) AND bucket >= {start} GROUP BY 1, 2 HAVING sum(active) > 0")
        return (f"SELECT resident_id, {self._trunc('hour', 'ts')} AS bucket, count(*) AS events"  # noqa: S608
                f" FROM device_events WHERE resident_id = ANY(%(rids)s) AND ts >= {start} AND ({ACTIVITY_RULE})"
                " GROUP BY 1, 2")


def create_sql(view: str) -> str:
    """CREATE MATERIALIZED VIEW for one aggregate, real-time, empty until its refresh policy runs."""
    _, query = DEFINITIONS[view]
    return (f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view}"
            " WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS"
            f"{query} WITH NO DATA")
