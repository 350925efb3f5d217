"""Fault-injection fixtures: a private broker (and PostgreSQL) per test, hub subprocesses, a seeded fleet.

These tests stop, kill and restart services, so they never touch the session-wide `services`
except to get a fresh database of their own (`db_url`), which nobody stops.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from devices.credentials import CredentialStore, acl_text
from hub.embedded import MosquittoInstance, PostgresInstance, free_port
from hub.storage.migrations import migrate
from simulators import bench
from tests.conftest import open_to_services

ROOT = bench.ROOT  # the hub's default topic root: the subprocess hubs run with default topics
DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "TERM"] if shutil.which("setpriv") else []
LOADGEN = "loadgen"  # a publisher account allowed to write every device's topics (a gateway's role)

# SOS ladders in seconds, so a test sees several steps: first notice, second notice, then reminders.
FAST_SOS = {"policies": [{
    "name": "sos_fault_test",
    "match": {"types": ["sos"]},
    "steps": [{"name": "first_notice", "recipients": ["family"], "timeout_s": 3},
              {"name": "second_notice", "recipients": ["family"], "timeout_s": 3}],
    "reminder": {"every_s": 10, "recipients": ["family"], "max_count": 100},
}]}


def report(title: str, figures: dict[str, Any]) -> None:
    """Print what a fault test did and found (run with -s to see it; also in the junit/captured output)."""
    print(f"\nFAULT {title}: {json.dumps(figures, ensure_ascii=False)}", flush=True)


def wait_for(predicate: Callable[[], Any], within: float, what: str, every: float = 0.1) -> Any:
    """Poll until `predicate()` is truthy and return it; fail naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within:.0f} s")
        time.sleep(every)


def restart(service: MosquittoInstance | PostgresInstance) -> None:
    """Start a stopped private service again on the same data directory and port.

    The temp folders are opened to the service accounts again first: another pytest session
    starting meanwhile resets /tmp/pytest-of-<user> to mode 0700.
    """
    open_to_services(service.root.parent)
    service.start()


@dataclass
class Broker:
    """A private Mosquitto with the hub's account and a load-generator account."""

    instance: MosquittoInstance
    store: CredentialStore
    hub_password: str = "hub-fault-pw"
    loadgen_password: str = "loadgen-fault-pw"

    @property
    def port(self) -> int:
        """Its loopback port."""
        return self.instance.port

    @property
    def hub_url(self) -> str:
        """The hub's broker URL."""
        return f"mqtt://hub:{self.hub_password}@127.0.0.1:{self.port}"

    def publisher(self) -> bench.Publisher:
        """A QoS 1 publisher with a deep in-flight window (paho, max_inflight 1000)."""
        return bench.Publisher(self.port, LOADGEN, self.loadgen_password)


@pytest.fixture
def broker(service_tmp: Path) -> Iterator[Broker]:
    """A private broker with persistence (the repository's mosquitto.conf), stopped after the test."""
    instance = MosquittoInstance(service_tmp / "mosquitto", free_port())
    instance.root.mkdir(parents=True)
    instance.acl_file.write_text(acl_text(ROOT, "hub", {LOADGEN: f"{ROOT}/#"}))
    store = CredentialStore(instance.passwd_file, instance.pid_file)
    made = Broker(instance, store)
    store.set_many({"hub": made.hub_password, LOADGEN: made.loadgen_password})
    instance.start()
    try:
        yield made
    finally:
        instance.stop()


@pytest.fixture
def private_pg(service_tmp: Path) -> Iterator[PostgresInstance]:
    """A private PostgreSQL+TimescaleDB cluster this test may stop and restart."""
    pg = PostgresInstance(service_tmp / "pg", free_port())
    pg.start()
    try:
        migrate(pg.url)
        yield pg
    finally:
        pg.stop()


def seed_fleet(db_url: str, devices: int) -> int:
    """Residents with one family contact each, `devices` devices (a wristband and 4 sensors per resident)."""
    bench.seed(db_url, devices)
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO contacts (resident_id, position, name, phone)"
                     " SELECT id, 1, 'contact', '13800000000' FROM residents ON CONFLICT DO NOTHING")
        row = conn.execute("SELECT count(*) FROM residents").fetchone()
    assert row is not None
    return int(row[0])


@dataclass
class HubProcess:
    """`python -m hub run` against external URLs, in its own process, with its API on a free port."""

    env: dict[str, str]
    log: Path
    api_port: int
    proc: subprocess.Popen[bytes] | None = None
    starts: list[float] = field(default_factory=list)

    def start(self) -> None:
        """Start the process (not waiting for it to be ready)."""
        out = self.log.open("ab")
        try:
            # setpriv sets the parent-death signal without a preexec_fn (unsafe with the publisher's
            # threads running): a hub left behind by a killed pytest stops by itself.
            self.proc = subprocess.Popen([*DIE_WITH_PARENT, sys.executable, "-m", "hub", "run"], env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT)
        finally:
            out.close()
        self.starts.append(time.time())

    def health(self) -> dict[str, Any] | None:
        """The /health body, or None while the API does not answer."""
        try:
            return httpx.get(f"http://127.0.0.1:{self.api_port}/health", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return None

    def wait_ready(self, within: float = 30) -> dict[str, Any]:
        """Wait until /health says ready (database and broker up)."""
        def ready() -> dict[str, Any] | None:
            assert self.proc is not None and self.proc.poll() is None, f"hub exited: {self.tail()}"
            body = self.health()
            return body if body and body["ready"] else None
        return wait_for(ready, within, "hub ready")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no disconnect, nothing flushed."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP: frozen with its connections open (messages reach its socket, nothing is acknowledged)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM and wait (then kill)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def tail(self, lines: int = 15) -> str:
        """The end of its log, for failure messages."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def hub_process(tmp_path: Path) -> Iterator[Callable[..., HubProcess]]:
    """`make(db_url, broker, **env)` → a HubProcess (not started); every one is stopped after the test."""
    made: list[HubProcess] = []
    policy = tmp_path / "policies.yaml"
    policy.write_text(yaml.safe_dump(FAST_SOS))

    def make(db_url: str, broker: Broker, **extra: str) -> HubProcess:
        port = free_port()
        env = {**os.environ, "ELDERCARE_DB_URL": db_url, "ELDERCARE_MQTT_URL": broker.hub_url,
               "ELDERCARE_API_PORT": str(port), "ELDERCARE_DATA_DIR": str(tmp_path / "var"),
               "ELDERCARE_WATCH_GATEWAY_PORT": "0", "ELDERCARE_MQTT_CLIENT_ID": "hub-fault",
               "ELDERCARE_POLICY_FILE": str(policy), "ELDERCARE_LOG_LEVEL": "INFO",
               "ELDERCARE_INGEST_FLUSH_MS": "20", "ELDERCARE_QUIET_HOURS": "",
               "ELDERCARE_MQTT_PASSWD_FILE": str(broker.instance.passwd_file), **extra}
        hub = HubProcess(env, tmp_path / f"hub{len(made)}.log", port)
        made.append(hub)
        return hub

    try:
        yield make
    finally:
        for hub in made:
            hub.stop()


def sos_summary(db_url: str, since: float) -> dict[str, int]:
    """SOS presses stored and SOS alerts raised for them since `since` (Unix time of the first message)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM device_events WHERE kind = 'sos' AND ts >= to_timestamp(%(s)s)),"
            " (SELECT count(*) FROM alerts WHERE type = 'sos' AND first_ts >= to_timestamp(%(s)s)),"
            " (SELECT count(DISTINCT resident_id) FROM alerts WHERE type = 'sos' AND first_ts >= to_timestamp(%(s)s)),"
            " (SELECT coalesce(sum(trigger_count), 0) FROM alerts WHERE type = 'sos'"
            "   AND first_ts >= to_timestamp(%(s)s))",
            {"s": since}).fetchone()
    assert row is not None
    return {"sos_events": int(row[0]), "sos_alerts": int(row[1]), "residents_alerted": int(row[2]),
            "triggers": int(row[3])}
