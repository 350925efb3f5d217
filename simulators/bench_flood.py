"""`python -m simulators.bench flood`: one device floods alarms; how soon does another device's SOS reach the API?

Issue 17, finding 6: 10,000 QoS 1 alarm messages from one wristband delayed another wristband's SOS
by 2.46 s. The hub now sheds a device over its rate at the door (hub/ingest/ratelimit.py); this
measures the SOS's way from publish to GET /api/alerts while such a flood is in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from hub.embedded import free_port
from hub.storage.migrations import migrate
from simulators import bench

FLOODER, VICTIM = "BW000000", "BW000001"  # wristbands of two residents in bench.seed's fleet
VICTIM_RESIDENT = "BR000001"
_USER, _PASSWORD = "flood-admin", "flood-admin-pw"


def flood_messages(n: int, t0: float, root: str = bench.ROOT) -> list[tuple[str, bytes]]:
    """n distinct SOS-bit alarms from the flooding wristband (each a new id: none is a duplicate)."""
    topic = f"{root}/wristband/{FLOODER}/alarm"
    return [(topic, json.dumps({"v": 1, "id": f"flood{i}", "ts": t0 + i * 1e-4, "alarms": ["sos"]}).encode())
            for i in range(n)]


def victim_sos(root: str = bench.ROOT) -> tuple[str, bytes]:
    """The other wristband's SOS press."""
    body = {"v": 1, "id": f"victim-{time.time_ns()}", "ts": time.time(), "location": None}
    return f"{root}/wristband/{VICTIM}/sos", json.dumps(body).encode()


def add_admin(db_url: str) -> None:
    """An unscoped admin the measurement logs in as."""
    from hub.users import create_user

    async def make() -> None:
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            await create_user(conn, _USER, _PASSWORD, "admin")

    asyncio.run(make())


@dataclass
class FloodResult:
    """What one flood measurement saw."""

    sos_to_api_s: float | None
    flood_sent: int
    flood_acked_before_sos: int
    flood_events_stored_when_sos_seen: int
    flood_events_stored: int
    rate_limited_urgent: int
    rate_limited_flooder: int
    flooder_alerts: int

    def as_dict(self) -> dict[str, Any]:
        """JSON shape (rounded)."""
        out = dict(self.__dict__)
        if self.sos_to_api_s is not None:
            out["sos_to_api_s"] = round(self.sos_to_api_s, 3)
        return out


def _stored(db_url: str, device: str) -> int:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM device_events WHERE device_id = %s", (device,)).fetchone()
    return int(row[0]) if row else 0


def measure(db_url: str, api_base: str, broker_port: int, user: str, password: str, flood: int = 10_000,
            head: int = 2_000, within: float = 30.0) -> FloodResult:
    """Publish `flood` alarms from one wristband; after `head` are acknowledged, the other one's SOS."""
    http = httpx.Client(base_url=api_base, timeout=5)
    token = http.post("/api/auth/token", data={"username": _USER, "password": _PASSWORD}).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    flooder = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"flood-{os.getpid()}")
    victim = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"victim-{os.getpid()}")
    for client in (flooder, victim):
        client.username_pw_set(user, password)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.connect("127.0.0.1", broker_port)
        client.loop_start()
    try:
        infos = [flooder.publish(topic, payload, qos=1) for topic, payload in flood_messages(flood, time.time() - 5)]
        for info in infos[:head]:
            info.wait_for_publish(within)
        acked = sum(1 for info in infos if info.is_published())
        topic, payload = victim_sos()
        sent = time.monotonic()
        victim.publish(topic, payload, qos=1).wait_for_publish(within)
        seen: float | None = None
        stored_then = 0
        while time.monotonic() - sent < within:
            page = http.get("/api/alerts", params={"type": "sos", "resident_id": VICTIM_RESIDENT}).json()
            if page["items"]:
                seen = time.monotonic() - sent
                stored_then = _stored(db_url, FLOODER)
                break
            time.sleep(0.01)
        for info in infos:
            info.wait_for_publish(within)
        time.sleep(1.0)  # let the hub finish what it took of the flood
        counters = http.get("/health").json().get("ingest", {}).get("counters", {})
        flooder_alerts = len(http.get("/api/alerts", params={"resident_id": "BR000000"}).json()["items"])
    finally:
        for client in (flooder, victim):
            client.disconnect()
            client.loop_stop()
        http.close()
    return FloodResult(seen, flood, acked, stored_then, _stored(db_url, FLOODER),
                       int(counters.get("rate_limited_urgent", 0)), int(counters.get(f"rate_limited.{FLOODER}", 0)),
                       flooder_alerts)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start a private PostgreSQL, Mosquitto and hub, measure once, and return the figures."""
    with ExitStack() as stack:
        base, pg = bench.private_postgres(stack, "eldercare-flood-")
        broker = bench.private_broker(stack, base)
        migrate(pg.url)
        bench.seed(pg.url, 10)
        add_admin(pg.url)
        api_port = free_port()
        env = {**os.environ, "ELDERCARE_DB_URL": pg.url, "ELDERCARE_LOG_LEVEL": "WARNING",
               "ELDERCARE_MQTT_URL": f"mqtt://hub:hub-bench@127.0.0.1:{broker.port}",
               "ELDERCARE_MQTT_CLIENT_ID": "hub-flood", "ELDERCARE_WATCH_GATEWAY_PORT": "0",
               "ELDERCARE_API_PORT": str(api_port), "ELDERCARE_DATA_DIR": str(base / "var"),
               "ELDERCARE_INGEST_FLUSH_MS": "20"}
        log = stack.enter_context((base / "hub.log").open("ab"))
        hub = subprocess.Popen([sys.executable, "-m", "hub", "run"], env=env, stdout=log, stderr=log,
                               preexec_fn=bench.die_with_parent)  # noqa: PLW1509 - main thread only
        stack.callback(_stop, hub)
        api = f"http://127.0.0.1:{api_port}"
        _wait_ready(api)
        result = measure(pg.url, api, broker.port, "bench", "bench", args.messages, args.head)
    return {"flood": result.as_dict(), "machine": {"cpus": os.cpu_count()}}


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _wait_ready(api: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api}/health", timeout=2).json().get("ready"):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    raise RuntimeError("the hub did not become ready")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `flood` sub-command's options."""
    parser.add_argument("--messages", type=int, default=10_000, help="alarms the flooding device sends")
    parser.add_argument("--head", type=int, default=2_000,
                        help="flood messages acknowledged by the broker before the other device's SOS")
    parser.add_argument("--json", action="store_true", help="print only the JSON object")


if __name__ == "__main__":
    sys.exit("run it as: python -m simulators.bench flood")
