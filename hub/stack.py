"""`make run`: the hub on its own private PostgreSQL and Mosquitto, or on external ones, with a demo fleet."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import signal
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import psycopg

from devices.credentials import CredentialStore, acl_text
from hub.embedded import MosquittoInstance, PostgresInstance
from hub.embedded.process import EmbeddedError, service_dir, service_user
from hub.embedded.process import stop as stop_child
from hub.errors import ConfigError
from hub.settings import Settings
from hub.storage.migrations import migrate

log = logging.getLogger(__name__)

GATEWAY_ACCOUNTS = {"gw-watch3g": "eldercare/v1/watch3g/#", "zigbee2mqtt": "zigbee2mqtt/#"}


def account_password(data_dir: Path, account: str) -> str:
    """A broker password for one of our own accounts on the private broker, generated once (mode 600)."""
    path = data_dir / "secrets" / f"{account}-mqtt-password"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def prepare_broker_accounts(broker: MosquittoInstance, settings: Settings, hub_password: str) -> CredentialStore:
    """Write the ACL and the hub's own account before the broker starts."""
    broker.root.mkdir(parents=True, exist_ok=True)
    broker.acl_file.write_text(acl_text(settings.mqtt_topic_root, settings.mqtt_username, GATEWAY_ACCOUNTS))
    store = CredentialStore(broker.passwd_file, broker.pid_file)
    store.set_password(settings.mqtt_username, hub_password)
    return store


def _start_services(settings: Settings, data: Path, services: ExitStack) -> tuple[str, str, CredentialStore]:
    """Start the private PostgreSQL and Mosquitto where no URL is given; (db url, mqtt url, credentials)."""
    if settings.db_url is None:
        pg = PostgresInstance(service_dir(data / "pg", service_user("postgres")), settings.embedded_pg_port)
        pg.start()
        services.callback(pg.stop)
        db_url = pg.url
        print(f"  private PostgreSQL+TimescaleDB on 127.0.0.1:{pg.port} (data in {pg.root})", flush=True)
    else:
        db_url = settings.db_url
    if settings.mqtt_url is not None:
        return db_url, settings.mqtt_url, CredentialStore(settings.passwd_file, settings.mqtt_reload_pid_file)
    broker_dir = service_dir(data / "mosquitto", service_user("mosquitto"))
    broker = MosquittoInstance(broker_dir, settings.embedded_mqtt_port, tls_port=settings.mqtt_tls_port,
                               tls_dir=settings.tls_dir.resolve(), device_port=settings.embedded_mqtt_device_port)
    password = account_password(data, "hub")
    store = prepare_broker_accounts(broker, settings, password)
    store.set_password("gw-watch3g", account_password(data, "gw-watch3g"))
    broker.start()
    services.callback(broker.stop)
    print(f"  private Mosquitto on 127.0.0.1:{broker.port}", flush=True)
    if broker.device_port:
        print(f"  private Mosquitto device listener on 127.0.0.1:{broker.device_port}", flush=True)
    if broker.tls_port:
        print(f"  private Mosquitto TLS listener on 127.0.0.1:{broker.tls_port} (CA: {settings.tls_dir}/ca.crt)",
              flush=True)
    return db_url, f"mqtt://{settings.mqtt_username}:{password}@127.0.0.1:{broker.port}", store


def _stop_children(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        stop_child(proc)


async def _run(settings: Settings) -> None:
    from hub.service import Hub, serve
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    data = settings.data_dir.resolve()
    try:
        data.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise EmbeddedError(f"cannot create the data folder {data} ({err.strerror}); run from a folder you can "
                            "write to or set ELDERCARE_DATA_DIR") from None
    with ExitStack() as services:
        db_url, mqtt_url, store = _start_services(settings, data, services)
        hub = Hub(settings, db_url, mqtt_url, escalation_elsewhere=settings.escalation_process)
        workers = spawn_workers(settings, db_url, mqtt_url) if settings.spawn_workers else []
        if settings.escalation_process:
            workers.append(spawn_escalation(db_url))
            print("  escalation engine in its own process", flush=True)
        services.callback(_stop_children, workers)
        if settings.workers > 1 and settings.spawn_workers:
            print(f"  {settings.workers} ingestion workers (shared subscription)", flush=True)
        # Gateways and the demo fleet are devices: on the private broker they use its device listener.
        device_port = settings.embedded_mqtt_device_port or settings.embedded_mqtt_port
        gateway_url = settings.watch_gateway_mqtt_url or (
            None if settings.mqtt_url else
            f"mqtt://gw-watch3g:{account_password(data, 'gw-watch3g')}@127.0.0.1:{device_port}")
        tasks = []
        if settings.watch_gateway_port and gateway_url:
            tasks.append(asyncio.create_task(_watch_gateway(settings, gateway_url, db_url)))
            print(f"  3G-watch gateway on {settings.watch_gateway_host}:{settings.watch_gateway_port}", flush=True)
        if settings.demo:
            demo_url = mqtt_url if settings.mqtt_url else f"mqtt://127.0.0.1:{device_port}"
            tasks.append(asyncio.create_task(_demo(settings, db_url, demo_url, store, stop)))
        print(f"  dashboard: http://{settings.api_host}:{settings.api_port}/console   API docs: /docs", flush=True)
        if settings.demo:
            print("  demo logins: demo / demo (operator), worker1 / worker1 and worker2 / worker2 "
                  "(community workers); demo mode only", flush=True)
        print("  press Ctrl-C to stop", flush=True)
        try:
            await serve(hub, stop)
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    print("stopped; data kept in", data, flush=True)


async def _demo(settings: Settings, db_url: str, broker_url: str, store: CredentialStore, stop: asyncio.Event) -> None:
    from urllib.parse import urlsplit

    from simulators import demo

    fleet_file = settings.data_dir.resolve() / "demo" / "fleet.json"
    await asyncio.to_thread(migrate, db_url)
    if fleet_file.exists():
        devices = demo.load(fleet_file)
    else:
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            devices = await demo.seed(conn, store, settings.demo_households, random.Random(1))  # noqa: S311 - demo data, not secrets
        demo.save(devices, fleet_file)
    parts = urlsplit(broker_url)
    await asyncio.sleep(2)  # let the hub subscribe first so the first SOS is not the one it misses
    log.info("demo fleet: %d devices in %d households", len(devices), settings.demo_households)
    await demo.run_fleet(devices, parts.hostname or "127.0.0.1", parts.port or 1883, settings.mqtt_topic_root, stop)


async def _watch_gateway(settings: Settings, mqtt_url: str, db_url: str) -> None:
    from urllib.parse import urlsplit

    from devices.watch3g.bridge import serve as serve_watches
    from devices.watch3g.guard import DbRoster, GatewayLimits
    from hub.embedded.process import ensure_port_free

    ensure_port_free(settings.watch_gateway_port, "3G-watch gateway", "ELDERCARE_WATCH_GATEWAY_PORT")
    parts = urlsplit(mqtt_url)
    roster = DbRoster(db_url)
    await serve_watches(settings.watch_gateway_host, settings.watch_gateway_port, parts.hostname or "127.0.0.1",
                        parts.port or 1883, parts.username, parts.password, root=settings.mqtt_topic_root,
                        is_provisioned=roster, last_fix=roster.last_fix, limits=GatewayLimits(
                            settings.watch_gateway_max_connections, settings.watch_gateway_max_per_address,
                            settings.watch_gateway_hello_s, settings.watch_gateway_idle_s,
                            GatewayLimits.parse_networks(settings.watch_gateway_allowed_networks)))


def spawn_workers(settings: Settings, db_url: str, mqtt_url: str) -> list[subprocess.Popen[bytes]]:
    """Start workers 1..N-1 as child processes that die with this one."""
    from hub.embedded.process import die_with_parent

    procs = []
    for index in range(1, settings.workers):
        env = {**os.environ, "ELDERCARE_DB_URL": db_url, "ELDERCARE_MQTT_URL": mqtt_url,
               "ELDERCARE_WORKERS": str(settings.workers), "ELDERCARE_WORKER_INDEX": str(index)}
        procs.append(subprocess.Popen([sys.executable, "-m", "hub", "worker"], env=env,
                                      preexec_fn=die_with_parent))  # noqa: PLW1509 - main thread only
    return procs


def spawn_escalation(db_url: str) -> subprocess.Popen[bytes]:
    """Start `python -m hub escalation` as a child process that dies with this one."""
    from hub.embedded.process import die_with_parent

    env = {**os.environ, "ELDERCARE_DB_URL": db_url}
    return subprocess.Popen([sys.executable, "-m", "hub", "escalation"], env=env,
                            preexec_fn=die_with_parent)  # noqa: PLW1509 - main thread only


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _run_worker(settings: Settings) -> None:
    from hub.service import Hub, serve
    stop = _stop_on_signals()
    assert settings.db_url and settings.mqtt_url
    # Worker 0 started alone (the benchmark does) leaves escalation to `hub escalation` when so configured.
    elsewhere = settings.escalation_process and settings.worker_index == 0
    await serve(Hub(settings, settings.db_url, settings.mqtt_url, escalation_elsewhere=elsewhere), stop,
                with_api=False)


async def _run_escalation(settings: Settings) -> None:
    from alerts.engine import Engine
    from hub import worker_stats
    from hub.health import Health
    from hub.shutdown import unless_stopped
    from hub.storage.pool import make_pool, wait_for_database

    stop = _stop_on_signals()
    assert settings.db_url
    health = Health()
    if not await unless_stopped(wait_for_database(settings.db_url, health), stop):
        return
    await asyncio.to_thread(migrate, settings.db_url)  # the tables it works on exist before worker 0 is up
    pool = make_pool(settings.db_url, settings.db_pool_max)
    await pool.open(wait=True, timeout=30)
    engine = Engine.from_settings(pool, health, settings)
    log.info("escalation engine running in its own process")
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(engine.run(), name="escalation"),
                     tg.create_task(worker_stats.run(pool, worker_stats.ESCALATION, health, health.as_dict),
                                    name="worker-stats")]
            await stop.wait()
            for task in tasks:
                task.cancel()
    finally:
        await pool.close()


def run_escalation(settings: Settings) -> None:
    """Run the escalation engine alone until SIGTERM (worker 0 then leaves it out)."""
    if settings.db_url is None:
        raise ConfigError("the escalation process needs ELDERCARE_DB_URL")
    asyncio.run(_run_escalation(settings))


def run_worker(settings: Settings) -> None:
    """Run one extra ingestion worker until SIGTERM."""
    if settings.db_url is None or settings.mqtt_url is None:
        raise ConfigError("a worker needs ELDERCARE_DB_URL and ELDERCARE_MQTT_URL")
    asyncio.run(_run_worker(settings))


def run(settings: Settings) -> None:
    """Start everything and block until Ctrl-C."""
    asyncio.run(_run(settings))
