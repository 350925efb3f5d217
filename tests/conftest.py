"""Session-wide real services (PostgreSQL+TimescaleDB, Mosquitto) and per-test isolation."""

from __future__ import annotations

import asyncio
import io
import os
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings as hypothesis_settings

from devices.credentials import CredentialStore, acl_text
from hub.embedded import MosquittoInstance, PostgresInstance, free_port
from hub.settings import Settings, load_settings
from hub.storage.migrations import migrate

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
TEMPLATE = "eldercare_template"
TEST_ROOT_PATTERN = "t/+/v1"  # every test publishes under t/<test id>/v1

# `make test` and CI must pass or fail because of the code, never because of a random draw: there
# the property tests draw the same derandomized examples every run. HYPOTHESIS_PROFILE=random asks
# for fresh random draws (plain `pytest` outside CI does so by default).
hypothesis_settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
hypothesis_settings.register_profile("random", deadline=None, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "random"))


@dataclass
class Services:
    """The running private services and what tests need to reach them."""

    pg: PostgresInstance
    broker: MosquittoInstance
    store: CredentialStore
    hub_password: str

    def mqtt_url(self, user: str = "hub", password: str | None = None) -> str:
        """A broker URL for an account (the hub's by default)."""
        return f"mqtt://{user}:{password or self.hub_password}@127.0.0.1:{self.broker.port}"


def open_to_services(path: Path) -> Path:
    """Let PostgreSQL and Mosquitto, which run as their own users under root, reach a temp folder."""
    path.chmod(0o755)
    tmp = Path(tempfile.gettempdir()).resolve()
    for parent in path.resolve().parents:  # pytest's base folders are private (0700) by default
        if parent != tmp and tmp in parent.parents:
            parent.chmod(parent.stat().st_mode | 0o055)
    return path


@pytest.fixture
def service_tmp(tmp_path: Path) -> Path:
    """A temp folder the private services may use."""
    return open_to_services(tmp_path)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """aiomqtt and psycopg's async API run on asyncio."""
    return "asyncio"


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """Start PostgreSQL+TimescaleDB and Mosquitto once for the whole run, on free ports."""
    base = open_to_services(tmp_path_factory.mktemp("services"))
    pg = PostgresInstance(base / "pg", free_port())
    pg.start()
    broker = MosquittoInstance(base / "mosquitto", free_port(), device_port=free_port())
    broker.root.mkdir(parents=True)
    broker.acl_file.write_text(acl_text(TEST_ROOT_PATTERN, "hub", {"gw-watch3g": "t/+/v1/watch3g/#",
                                                                   "zigbee2mqtt": "z2m/#"}))
    store = CredentialStore(broker.passwd_file, broker.pid_file)
    hub_password = secrets.token_urlsafe(16)
    store.set_password("hub", hub_password)
    broker.start()
    _make_template(pg)
    try:
        yield Services(pg, broker, store, hub_password)
    finally:
        broker.stop()
        pg.stop()


def _make_template(pg: PostgresInstance) -> None:
    url = pg.create_database(TEMPLATE)
    migrate(url)
    with psycopg.connect(pg.admin_url(), autocommit=True) as conn:
        # No connections to the template, so CREATE DATABASE ... TEMPLATE never finds it busy.
        conn.execute(f"ALTER DATABASE {TEMPLATE} WITH ALLOW_CONNECTIONS false IS_TEMPLATE true")
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (TEMPLATE,))


@pytest.fixture
def db_url(services: Services) -> str:
    """A fresh, migrated database of this test's own."""
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(services.pg.admin_url(), autocommit=True) as conn:
        for _ in range(50):
            try:
                conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
                break
            except psycopg.errors.ObjectInUse:
                import time

                time.sleep(0.1)
    return services.pg.admin_url(name)


@pytest.fixture
def test_id() -> str:
    """A short id unique to this test."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def topic_root(test_id: str) -> str:
    """This test's own topic prefix, so tests never see each other's messages."""
    return f"t/{test_id}/v1"


@pytest.fixture
def settings(db_url: str, services: Services, topic_root: str, test_id: str, tmp_path: Path) -> Settings:
    """Settings pointing at the shared services, this test's database and topic root."""
    return load_settings(
        db_url=db_url,
        mqtt_url=services.mqtt_url(),
        mqtt_topic_root=topic_root,
        mqtt_client_id=f"hub-{test_id}",
        mqtt_passwd_file=services.broker.passwd_file,
        mqtt_reload_pid_file=services.broker.pid_file,
        data_dir=tmp_path / "var",
        api_port=free_port(),
        ingest_flush_ms=20,
        zigbee2mqtt_base_topic=f"z2m/{test_id}",
    )


@pytest.fixture
async def running_hub(settings: Settings) -> AsyncIterator[object]:
    """A full hub (ingestion, writer, escalation, API on a free port) for one test."""
    from hub.service import Hub, serve

    assert settings.db_url and settings.mqtt_url
    hub = Hub(settings, settings.db_url, settings.mqtt_url)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(hub, stop))
    for _ in range(200):
        if hub.health.broker.ok and hub.caps is not None and _port_open(settings.api_port):
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError("hub did not become ready in 10 s")
    try:
        yield hub
    finally:
        stop.set()
        done, _ = await asyncio.wait({task}, timeout=20)
        if not done:  # a hang is a failure with every task's stack, not a CI run that never ends
            stacks = io.StringIO()
            for pending in asyncio.all_tasks():
                pending.print_stack(file=stacks)
            task.cancel()
            await asyncio.wait({task}, timeout=5)
            raise RuntimeError(f"the hub did not stop within 20 s; its tasks:\n{stacks.getvalue()}")
        task.result()


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class World:
    """Creates regions, residents, users and provisioned devices in a test's database."""

    db_url: str
    services: Services
    topic_root: str

    async def region_tree(self) -> None:
        """Two communities in two districts of one city."""
        async with await psycopg.AsyncConnection.connect(self.db_url) as conn:
            for path, level in (("sz", "city"), ("sz/futian", "district"), ("sz/futian/lianhua", "community"),
                                ("sz/nanshan", "district"), ("sz/nanshan/shekou", "community")):
                await conn.execute("INSERT INTO regions (path, level, name) VALUES (%s, %s, %s)"
                                   " ON CONFLICT DO NOTHING", (path, level, path.rsplit("/", 1)[-1]))

    async def resident(self, rid: str = "R1", community: str = "sz/futian/lianhua", *,
                       contacts: int = 1, flags: tuple[str, ...] = ("living_alone",)) -> str:
        """A household with one resident and `contacts` family contacts."""
        await self.region_tree()
        async with await psycopg.AsyncConnection.connect(self.db_url) as conn:
            hid = "H" + rid
            await conn.execute("INSERT INTO households (id, region_path, address, lat, lon) VALUES"
                               " (%s, %s, '1 Test Road', 22.55, 114.05)", (hid, community))
            await conn.execute("INSERT INTO residents (id, household_id, name, birth_year, risk_flags)"
                               " VALUES (%s, %s, %s, 1940, %s)", (rid, hid, "Test Resident", list(flags)))
            for i in range(1, contacts + 1):
                await conn.execute("INSERT INTO contacts (resident_id, position, name, phone) VALUES"
                                   " (%s, %s, %s, %s)", (rid, i, f"Contact {i}", f"1380000000{i}"))
        return rid

    async def device(self, device_id: str, device_type: str, resident_id: str, room: str | None = None) -> str:
        """Provision a device bound to a resident; returns its broker password."""
        from devices.provisioning import issue_credentials, provision

        async with await psycopg.AsyncConnection.connect(self.db_url) as conn:
            await provision(conn, device_id, device_type, resident_id=resident_id, room=room)
        return issue_credentials(self.services.store, [device_id])[device_id]

    async def user(self, username: str, role: str, scope_path: str | None = None,
                   resident_id: str | None = None) -> str:
        """Create a user whose password is its username + '-pw'."""
        from hub.users import create_user

        async with await psycopg.AsyncConnection.connect(self.db_url) as conn:
            await create_user(conn, username, username + "-pw", role, scope_path=scope_path,
                              resident_id=resident_id)
        return username + "-pw"

    def topic(self, device_type: str, device_id: str, kind: str) -> str:
        """A native topic under this test's root."""
        return f"{self.topic_root}/{device_type}/{device_id}/{kind}"


@pytest.fixture
def world(db_url: str, services: Services, topic_root: str) -> World:
    """Factories for this test's database."""
    return World(db_url, services, topic_root)


class DeviceClients:
    """Connects simulated devices to the test broker's device listener with their own credentials."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def connect(self, username: str, password: str, **kwargs: object) -> object:
        """An entered aiomqtt client; retries while the broker is still reloading its password file."""
        import aiomqtt

        last: Exception | None = None
        for _ in range(40):
            client = aiomqtt.Client("127.0.0.1", self.services.broker.device_port, username=username,
                                    password=password, identifier=f"{username}-{uuid.uuid4().hex[:6]}",
                                    **kwargs)  # type: ignore[arg-type]
            try:
                await client.__aenter__()
                return client
            except aiomqtt.MqttError as err:
                last = err
                await asyncio.sleep(0.1)
        raise AssertionError(f"device {username} could not connect: {last}")


@pytest.fixture
def devices(services: Services) -> DeviceClients:
    """Connect devices to the shared broker."""
    return DeviceClients(services)


async def api_login(base: str, username: str, password: str) -> dict[str, str]:
    """Authorization headers for a user, via the real login endpoint."""
    import httpx

    async with httpx.AsyncClient(base_url=base) as http:
        res = await http.post("/api/auth/token", data={"username": username, "password": password})
        res.raise_for_status()
        return {"Authorization": f"Bearer {res.json()['access_token']}"}


@pytest.fixture
def login() -> object:
    """`await login(base_url, user, password)` → auth headers."""
    return api_login
