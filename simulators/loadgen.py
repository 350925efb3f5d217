"""Fleet load measurement against a private broker: `python -m simulators.loadgen --devices 10000 --duration 60`.

Starts its own Mosquitto (loopback, free port, accounts it controls), runs the fleet over shared
gateway connections in one or more processes, counts what a subscriber receives, prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt

from devices.credentials import CredentialStore, acl_text
from hub.embedded import MosquittoInstance, free_port
from simulators.fleet import Fleet, Stats, clock_for
from simulators.gateway import gateway_links
from simulators.household import make_households

ROOT = "eldercare/v1"
DEVICES_PER_HOUSEHOLD = 8.5  # the default kit plus a radar in half of the households


def _worker(index: int, households: int, args: dict[str, Any], port: int, password: str,
            out: multiprocessing.Queue[dict[str, Any]]) -> None:
    out.put(asyncio.run(_drive(index, households, args, port, password)))


async def _drive(index: int, households: int, args: dict[str, Any], port: int, password: str) -> dict[str, Any]:
    rng = random.Random(args["seed"] * 1000 + index)
    houses = make_households(households, f"p{index}x", rng)
    stats = Stats()
    links, left = gateway_links(houses, "native", args["per_connection"], "127.0.0.1", port, "loadgw", password,
                                ROOT, stats)
    assert not left
    clock = clock_for(args["speed"], args["duration"])
    fleet = Fleet(houses, links, clock, stats, seed=args["seed"] + index, imu_rate_hz=args["rate_imu"])
    stop = asyncio.Event()
    await fleet.run(stop, args["duration"], sys.stderr if index == 0 and args["progress"] else None)
    return stats.summary(clock)


async def _count(port: int, password: str, stop: asyncio.Event, counts: dict[str, int],
                 ready: asyncio.Event) -> None:
    async with aiomqtt.Client("127.0.0.1", port, username="counter", password=password,
                              max_queued_incoming_messages=0) as client:
        await client.subscribe(f"{ROOT}/#")
        ready.set()
        async for _ in client.messages:
            counts["received"] += 1
            if stop.is_set():
                return


def run(devices: int, processes: int, per_connection: int, duration: float, speed: float, rate_imu: float,
        seed: int, progress: bool = True) -> dict[str, Any]:
    """Start a private broker, run the fleet in `processes` processes, and measure."""
    with tempfile.TemporaryDirectory(prefix="loadgen-") as tmp:
        base = Path(tmp)
        base.chmod(0o755)
        broker = MosquittoInstance(base / "mosquitto", free_port(), max_connections=60000)
        broker.root.mkdir(parents=True)
        broker.acl_file.write_text(acl_text(ROOT, "counter", {"loadgw": f"{ROOT}/#", "zigbee2mqtt": "zigbee2mqtt/#"}))
        password = secrets.token_urlsafe(12)
        CredentialStore(broker.passwd_file).set_many({"counter": password, "loadgw": password,
                                                      "zigbee2mqtt": password})
        broker.start()
        try:
            return asyncio.run(_measure(broker.port, password, devices, processes, per_connection, duration, speed,
                                        rate_imu, seed, progress))
        finally:
            broker.stop()


async def _measure(port: int, password: str, devices: int, processes: int, per_connection: int, duration: float,
                   speed: float, rate_imu: float, seed: int, progress: bool) -> dict[str, Any]:
    counts = {"received": 0}
    stop, ready = asyncio.Event(), asyncio.Event()
    counter = asyncio.create_task(_count(port, password, stop, counts, ready))
    await asyncio.wait_for(ready.wait(), 30)
    households = max(1, round(devices / DEVICES_PER_HOUSEHOLD / processes))
    args = {"seed": seed, "per_connection": per_connection, "speed": speed, "duration": duration,
            "rate_imu": rate_imu, "progress": progress}
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[dict[str, Any]] = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(i, households, args, port, password, results))
             for i in range(processes)]
    started = time.monotonic()
    for p in procs:
        p.start()
    summaries = []
    for _ in procs:
        summaries.append(await asyncio.to_thread(results.get, True, duration + 120))
    for p in procs:
        await asyncio.to_thread(p.join, 30)
    elapsed = time.monotonic() - started
    await asyncio.sleep(1.0)  # let the last messages arrive at the counter
    stop.set()
    counter.cancel()
    published = sum(s["published"] for s in summaries)
    conns = sum(s["connections"] for s in summaries)
    devs = sum(s["devices"] for s in summaries)
    return {
        "devices": devs, "processes": processes, "connections": conns,
        "devices_per_connection": round(devs / conns, 1) if conns else 0,
        "published": published, "received_by_subscriber": counts["received"],
        "errors": sum(s["errors"] for s in summaries), "duration_s": round(elapsed, 1),
        "publish_rate_per_s": round(sum(s["publish_rate_per_s"] for s in summaries), 1),
        "speed": speed, "imu_rate_hz": rate_imu, "per_process": summaries,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m simulators.loadgen", description=__doc__)
    parser.add_argument("--devices", type=int, default=10000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--per-connection", type=int, default=250, help="devices per gateway connection")
    parser.add_argument("--duration", type=float, default=60.0, help="real seconds (bounded: at most 600)")
    parser.add_argument("--speed", type=float, default=600.0, help="virtual seconds per real second")
    parser.add_argument("--rate-imu", type=float, default=0.0, help="wristband IMU sample rate (Hz)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 600:
        parser.error("--duration must be in (0, 600]")
    result = run(args.devices, args.processes, args.per_connection, args.duration, args.speed, args.rate_imu,
                 args.seed, progress=not args.json)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        brief = {k: v for k, v in result.items() if k != "per_process"}
        print(json.dumps(brief, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
