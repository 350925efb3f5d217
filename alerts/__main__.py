"""Command line: `python -m alerts report --since 2025-06-01 [--until ...] [--community sz/futian/lianhua]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta

from hub.errors import ConfigError, EldercareError


def _when(value: str) -> datetime:
    """An ISO date or date-time; naive values are read as UTC."""
    try:
        at = datetime.fromisoformat(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not an ISO date/time: {value!r}") from err
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def _report(db_url: str, args: argparse.Namespace) -> str:
    import psycopg

    from alerts.sla import render_table, sla_report

    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        report = await sla_report(conn, args.since, args.until, args.community, severities=args.severity)
    if args.json:
        return json.dumps([s.as_dict() for s in report], indent=2, ensure_ascii=False)
    return render_table(report)


def main(argv: list[str] | None = None) -> int:
    """Entry point; errors are one clear line with a non-zero exit."""
    parser = argparse.ArgumentParser(prog="python -m alerts", description="Alert service-level reports")
    sub = parser.add_subparsers(dest="command", required=True)
    report = sub.add_parser("report", help="SLA figures per community (reads ELDERCARE_DB_URL)")
    report.add_argument("--since", type=_when, required=True, help="start, ISO date or date-time (UTC if naive)")
    report.add_argument("--until", type=_when, default=None, help="end (exclusive); default: now")
    report.add_argument("--community", default=None, help="region path, e.g. sz/futian/lianhua (or a district)")
    report.add_argument("--severity", action="append", choices=["critical", "high", "medium", "low"],
                        help="severities counted (repeatable); default: critical")
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    args.until = args.until or datetime.now(UTC) + timedelta(seconds=1)
    args.severity = args.severity or ["critical"]

    from hub.settings import load_settings

    try:
        settings = load_settings()
        if settings.db_url is None:
            raise ConfigError("ELDERCARE_DB_URL is not set")
        print(asyncio.run(_report(settings.db_url, args)))
        return 0
    except EldercareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: database unreachable ({type(err).__name__})", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
