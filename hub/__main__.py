"""Command line: `python -m hub run | worker | escalation | config | migrate | users | import`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from hub.errors import ConfigError, EldercareError

if TYPE_CHECKING:
    from hub.settings import Settings


def main(argv: list[str] | None = None) -> int:
    """Entry point; errors are printed as one clear line with a non-zero exit."""
    parser = argparse.ArgumentParser(prog="python -m hub", description="Eldercare monitoring hub")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the hub (private PostgreSQL and Mosquitto unless URLs are set)")
    run.add_argument("--demo", action="store_true", help="seed demo households and run the demo fleet")
    sub.add_parser("worker", help="run one extra ingestion worker (ELDERCARE_WORKER_INDEX, URLs required)")
    sub.add_parser("escalation", help="run the escalation engine in its own process (ELDERCARE_DB_URL required)")
    sub.add_parser("config", help="print the effective configuration, secrets masked")
    sub.add_parser("migrate", help="apply database migrations to ELDERCARE_DB_URL")
    from hub import admin_cli

    admin_cli.add_parser(sub)
    imp = sub.add_parser("import", help="import a roster (CSV or XLSX) into ELDERCARE_DB_URL")
    imp.add_argument("file", help="the roster (.csv or .xlsx; template: GET /api/imports/template.xlsx)")
    imp.add_argument("--dry-run", action="store_true", help="check every row and report, write nothing")
    imp.add_argument("--credentials", help="where new devices' broker passwords go (default: beside FILE)")
    args = parser.parse_args(argv)

    from hub.settings import load_settings

    try:
        overrides = {"demo": True} if getattr(args, "demo", False) else {}
        settings = load_settings(**overrides)
        return _dispatch(args, settings)
    except EldercareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    """Run the chosen subcommand with the settings built at start-up."""
    from hub import logs

    if args.command == "config":
        print(json.dumps(settings.masked(), indent=2, ensure_ascii=False))
        return 0
    if args.command == "users":
        from hub import admin_cli

        return admin_cli.run(args, settings)
    logs.setup(settings.log_level)
    if args.command == "import":
        from hub.imports import cli

        return cli.main(settings, args.file, args.dry_run, args.credentials)
    if args.command == "migrate":
        if settings.db_url is None:
            raise ConfigError("ELDERCARE_DB_URL is not set")
        from hub.storage.migrations import migrate

        print("applied:", migrate(settings.db_url) or "nothing (up to date)")
        return 0
    from hub import stack

    runners = {"worker": stack.run_worker, "escalation": stack.run_escalation}
    runners.get(args.command, stack.run)(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
