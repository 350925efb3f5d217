"""Command line: `python -m simulators fleet ...` and `python -m simulators verify FILE...`."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

from hub.errors import EldercareError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default="http://127.0.0.1:8080", help="hub API (default %(default)s)")
    p.add_argument("--user", default="demo", help="operator or admin account (default %(default)s)")
    p.add_argument("--password", default="demo")
    p.add_argument("--mqtt-host", default="127.0.0.1")
    p.add_argument("--mqtt-port", type=int, default=18831,
                   help="broker port for devices (default: make run's device listener, %(default)s)")
    p.add_argument("--root", default="eldercare/v1", help="native topic root")
    p.add_argument("--region", default="sz/futian/lianhua", help="region path the households are created in")
    p.add_argument("--db-url", help="provision straight into this database instead of the API (needs --passwd-file)")
    p.add_argument("--passwd-file", help="Mosquitto password file for --db-url provisioning")
    p.add_argument("--reload-pid-file", help="Mosquitto pid file (SIGHUP after new accounts)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simulators", description="Simulated eldercare device fleets")
    sub = parser.add_subparsers(dest="command", required=True)
    fleet = sub.add_parser("fleet", help="run N simulated households through the real broker")
    fleet.add_argument("--households", type=int, default=5)
    fleet.add_argument("--seed", type=int, default=1)
    fleet.add_argument("--speed", type=float, default=1.0, help="virtual seconds per real second")
    fleet.add_argument("--duration", type=float, help="real seconds to run (default: one virtual day)")
    fleet.add_argument("--gateway", nargs="?", const="z2m", choices=("z2m", "native"),
                       help="share connections: z2m (zigbee2mqtt topics) or native (one gateway account)")
    fleet.add_argument("--gateway-user", default="zigbee2mqtt")
    fleet.add_argument("--gateway-password")
    fleet.add_argument("--devices-per-gateway", type=int, default=0, help="default: one gateway per household")
    fleet.add_argument("--rate-imu", type=float, default=0.0, help="wristband accelerometer sample rate, Hz")
    fleet.add_argument("--json", action="store_true", help="print the summary as JSON")
    fleet.add_argument("--quiet", action="store_true", help="no progress line")
    _common(fleet)
    verify = sub.add_parser("verify", help="run scenario files against a live hub and check the results")
    verify.add_argument("files", nargs="*", type=Path, help="scenario files (default: the shipped library)")
    verify.add_argument("--watch-gateway", help="HOST:PORT of the hub's watch gateway (default: run one here)")
    verify.add_argument("--fallalld", type=Path, help="FallAllD wrist folder to replay fall traces from")
    verify.add_argument("--sequential", action="store_true", help="run scenarios one at a time")
    _common(verify)
    return parser


async def _target(args: argparse.Namespace, api: Any) -> Any:
    from simulators.household import ApiProvisioner, DbProvisioner

    if args.db_url:
        if not args.passwd_file:
            raise EldercareError("--db-url needs --passwd-file (the broker's password file)")
        return DbProvisioner(args.db_url, args.passwd_file, args.reload_pid_file)
    if not await api.has_provisioning():
        raise EldercareError(f"the hub at {args.url} has no provisioning API (POST /api/devices); "
                             "pass --db-url and --passwd-file to provision directly")
    return ApiProvisioner(api)


async def _fleet(args: argparse.Namespace) -> dict[str, Any]:
    from simulators.fleet import Fleet, Stats, clock_for, direct_links
    from simulators.gateway import gateway_links
    from simulators.household import make_households
    from simulators.hubapi import HubApi

    if args.households < 1:
        raise EldercareError("--households must be at least 1")
    duration = args.duration if args.duration is not None else (86400 / args.speed if args.speed > 1 else None)
    rng = random.Random(args.seed)
    houses = make_households(args.households, "f" + secrets.token_hex(2), rng, args.region)
    async with HubApi(args.url, args.user, args.password) as api:
        provisioner = await _target(args, api)
        await provisioner.provision(houses)
    stats = Stats()
    if args.gateway:
        if not args.gateway_password:
            raise EldercareError("--gateway needs --gateway-password (the gateway account's broker password)")
        per = args.devices_per_gateway or 1
        links, left = gateway_links(houses, args.gateway, per, args.mqtt_host, args.mqtt_port, args.gateway_user,
                                    args.gateway_password, args.root, stats)
        ids = {d.device_id for d in left}
        links += [lk for lk in direct_links(houses, args.mqtt_host, args.mqtt_port, args.root, stats)  # type: ignore[misc]
                  if lk.device.device_id in ids]
    else:
        links = direct_links(houses, args.mqtt_host, args.mqtt_port, args.root, stats)  # type: ignore[assignment]
    clock = clock_for(args.speed, duration or 0)
    fleet = Fleet(houses, links, clock, stats, seed=args.seed, imu_rate_hz=args.rate_imu)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await fleet.run(stop, duration, None if args.quiet else sys.stderr)
    return {"households": len(houses), **stats.summary(clock)}


async def _verify(args: argparse.Namespace) -> int:
    from simulators.hubapi import HubApi
    from simulators.scenario import load_scenario, shipped
    from simulators.verify import Target, report, run_scenario

    files = args.files or shipped()
    scenarios = [load_scenario(f) for f in files]  # every file is checked before anything runs
    watch = None
    if args.watch_gateway:
        host, _, port = args.watch_gateway.rpartition(":")
        watch = (host or "127.0.0.1", int(port))
    async with HubApi(args.url, args.user, args.password) as api:
        target = Target(api, await _target(args, api), args.mqtt_host, args.mqtt_port, args.root, args.region,
                        watch, args.fallalld)

        def say(line: str) -> None:
            print(line, file=sys.stderr, flush=True)

        if args.sequential:
            results = [await run_scenario(s, target, say) for s in scenarios]
        else:
            results = list(await asyncio.gather(*(run_scenario(s, target, say) for s in scenarios)))
    for r in results:
        print(report(r))
    failed = [r.name for r in results if not r.passed]
    print(f"{len(results) - len(failed)} of {len(results)} scenarios passed" + (f"; failed: {', '.join(failed)}"
                                                                                 if failed else ""))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; errors are one clear line and a non-zero exit."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "fleet":
            summary = asyncio.run(_fleet(args))
            print(json.dumps(summary, indent=None if args.json else 2))
            return 0
        return asyncio.run(_verify(args))
    except EldercareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
