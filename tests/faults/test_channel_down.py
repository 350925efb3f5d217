"""A notification channel is down: the next channel and step still reach people; failures are on the timeline."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from simulators.native import message
from tests.faults.conftest import report, wait_for

pytestmark = pytest.mark.anyio

RETRY = {"max_attempts": 2, "backoff_s": 0.1, "backoff_max_s": 0.2, "timeout_s": 2, "deadline_s": 3}
# Step 1 has only the dead channel: the step fails and the ladder moves on at once (delivery_failed).
# Step 2 tries the dead channel first and falls back to the live one.
POLICY = {"policies": [{
    "name": "sos_channel_fault",
    "match": {"types": ["sos"]},
    "steps": [{"name": "first_notice", "recipients": ["family"], "channels": ["family-down"], "timeout_s": 600},
              {"name": "second_notice", "recipients": ["family"], "channels": ["family-down", "family-up"],
               "timeout_s": 600}],
}]}


class LiveReceiver:
    """A loopback HTTP receiver recording (arrival time, JSON body) of every POST."""

    def __init__(self) -> None:
        self.bodies: list[tuple[float, dict[str, Any]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                receiver.bodies.append((time.monotonic(), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    @property
    def url(self) -> str:
        """Where the live channel posts."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/family"


def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[LiveReceiver]:
    """The live receiver."""
    live = LiveReceiver()
    yield live
    live.server.shutdown()
    live.server.server_close()


@pytest.fixture
def settings(settings, receiver: LiveReceiver, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The test settings with a channels file whose first family channel is down."""
    channels = {
        "channels": [{"type": "webhook", "name": "family-down", "url": f"http://127.0.0.1:{closed_port()}/hook",
                      **RETRY},
                     {"type": "webhook", "name": "family-up", "url": receiver.url, **RETRY}],
        "routes": {"family": ["family-down", "family-up"]},
    }
    (tmp_path / "channels.yaml").write_text(yaml.safe_dump(channels))
    (tmp_path / "policies.yaml").write_text(yaml.safe_dump(POLICY))
    return settings.model_copy(update={"channels_file": tmp_path / "channels.yaml",
                                       "policy_file": tmp_path / "policies.yaml"})


async def test_escalation_goes_on_when_a_channel_is_down(running_hub, world, devices, settings, receiver, db_url):
    rid = await world.resident("R1", contacts=1)
    password = await world.device("WB1", "wristband", rid)
    client = await devices.connect("WB1", password)
    try:
        sent = time.monotonic()
        await client.publish(world.topic("wristband", "WB1", "sos"), message({"location": None}), qos=1)
    finally:
        await client.__aexit__(None, None, None)
    await asyncio.to_thread(wait_for, lambda: receiver.bodies, 20, "delivery on the live channel")
    reached_s = receiver.bodies[0][0] - sent

    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        rows = await (await conn.execute(
            "SELECT e.kind, e.details FROM alert_events e JOIN alerts a ON a.id = e.alert_id"
            " WHERE a.type = 'sos' ORDER BY e.id")).fetchall()
    entries = [(k, d) for k, d in rows]
    notes = [(d["step_name"], d["channel"], d["result"], d["detail"], d["attempts"])
             for k, d in entries if k == "notification"]
    kinds = [k for k, _ in entries]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.api_port}") as http:
        metrics = (await http.get("/metrics")).text
    failures = [line for line in metrics.splitlines() if line.startswith("eldercare_notification_failures_total{")]
    report("notification channel down", {
        "sos_sent": 1, "live_channel_reached_after_s": round(reached_s, 2), "timeline": kinds,
        "notifications": notes, "failure_metrics": failures})

    assert notes[0][:3] == ("first_notice", "family-down", "failed")
    assert "step_failed" in kinds
    escalated = next(d for k, d in entries if k == "escalated")
    assert escalated["reason"] == "delivery_failed" and escalated["step_name"] == "second_notice"
    assert [n[:3] for n in notes[1:]] == [("second_notice", "family-down", "failed"),
                                           ("second_notice", "family-up", "ok")]
    assert notes[0][3] == "ConnectError" or "ConnectError" in notes[0][3]
    assert 'eldercare_notification_failures_total{channel="family-down"} 2.0' in failures
    assert reached_s < 10
