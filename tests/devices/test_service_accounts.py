"""Finding 1 of issue 17: provisioning can never create, change, read or remove a service account."""

from __future__ import annotations

import asyncio

import aiomqtt
import httpx
import psycopg
import pytest

from devices.credentials import ReservedAccount
from devices.provisioning import ProvisioningError, check_device_id, issue_credentials
from tests.devices.test_cli import run_cli

pytestmark = pytest.mark.anyio

# eldercare-hub is the hub's default MQTT client id: a device of that name, whose client id is its name on the
# device listener, took over the hub's persistent session and the broker-acknowledged SOS in it was lost.
SERVICE_NAMES = ["hub", "HUB", "gw-watch3g", "zigbee2mqtt", "gw-anything", "svc-backup", "eldercare-hub",
                 "Eldercare-Hub-1"]


async def _hub_still_connects(services) -> None:
    """The hub's password still works (a few tries: a busy broker may be re-reading its files)."""
    for attempt in range(5):
        try:
            async with aiomqtt.Client("127.0.0.1", services.broker.port, username="hub",
                                      password=services.hub_password):
                return
        except aiomqtt.MqttError:
            if attempt == 4:
                raise
            await asyncio.sleep(0.5)


async def _operator(world, login, base: str) -> dict[str, str]:
    await world.resident("R1")
    await world.user("op1", "operator", "sz")
    return await login(base, "op1", "op1-pw")


async def test_the_api_refuses_every_service_account_name(running_hub, world, settings, services, login):
    base = f"http://127.0.0.1:{settings.api_port}"
    headers = await _operator(world, login, base)
    before = {name: services.store.hashed(name) for name in ("hub", "gw-watch3g", "zigbee2mqtt")}
    async with httpx.AsyncClient(base_url=base, headers=headers) as http:
        for name in SERVICE_NAMES:
            res = await http.post("/api/devices", json={"id": name, "type": "wristband", "resident_id": "R1"})
            assert res.status_code == 400, (name, res.text)
            assert "reserved for a service account" in res.json()["detail"]
            assert "mqtt_password" not in res.text
        ok = await http.post("/api/devices", json={"id": "hubcap-1", "type": "wristband", "resident_id": "R1"})
        assert ok.status_code == 201, ok.text
    assert {name: services.store.hashed(name) for name in before} == before
    async with await psycopg.AsyncConnection.connect(settings.db_url) as conn:
        rows = await (await conn.execute("SELECT id FROM devices ORDER BY id")).fetchall()
    assert rows == [("hubcap-1",)]
    await _hub_still_connects(services)


async def test_a_service_account_of_any_name_is_refused(running_hub, world, settings, services, login, test_id):
    """Not only the reserved names: any account the services file holds (e.g. a metrics exporter's)."""
    name = f"metrics{test_id}"
    services.store.set_password(name, "exporter-secret")
    hashed = services.store.hashed(name)
    base = f"http://127.0.0.1:{settings.api_port}"
    headers = await _operator(world, login, base)
    async with httpx.AsyncClient(base_url=base, headers=headers) as http:
        res = await http.post("/api/devices", json={"id": name, "type": "wristband", "resident_id": "R1"})
    assert res.status_code == 400, res.text
    assert services.store.hashed(name) == hashed
    services.store.remove(name)


async def test_a_legacy_device_row_named_hub_cannot_rotate_or_revoke_the_hubs_account(
        running_hub, world, settings, services, login):
    """A row provisioned before the fix: rotating would return the hub's new password, revoking delete it."""
    base = f"http://127.0.0.1:{settings.api_port}"
    headers = await _operator(world, login, base)
    async with await psycopg.AsyncConnection.connect(settings.db_url) as conn:
        await conn.execute("INSERT INTO devices (id, type, resident_id) VALUES ('hub', 'wristband', 'R1')")
    hashed = services.store.hashed("hub")
    async with httpx.AsyncClient(base_url=base, headers=headers) as http:
        rotated = await http.post("/api/devices/hub/credentials")
        revoked = await http.delete("/api/devices/hub")
    assert rotated.status_code == 400, rotated.text
    assert "mqtt_password" not in rotated.text
    assert revoked.status_code == 409, revoked.text
    assert services.store.hashed("hub") == hashed
    await _hub_still_connects(services)


async def test_the_cli_refuses_a_service_account_name(world, settings, services):
    await world.resident("R1")
    hashed = services.store.hashed("hub")
    done = run_cli(settings, "provision", "hub", "wristband", "--resident", "R1")
    assert done.returncode == 2
    assert "reserved for a service account" in done.stderr
    assert services.store.hashed("hub") == hashed
    async with await psycopg.AsyncConnection.connect(settings.db_url) as conn:
        assert await (await conn.execute("SELECT 1 FROM devices WHERE id = 'hub'")).fetchone() is None
    refused = run_cli(settings, "revoke", "gw-watch3g")
    assert refused.returncode == 2


def test_the_store_keeps_the_namespaces_apart(services):
    with pytest.raises(ProvisioningError):
        check_device_id(services.store, "zigbee2mqtt")  # named in the ACL, though it has no password yet
    with pytest.raises(ProvisioningError):
        issue_credentials(services.store, ["OK-1", "hub"])  # one reserved name: nothing is written
    assert services.store.hashed("OK-1") is None
    with pytest.raises(ReservedAccount):
        services.store.remove_device("hub")
    assert "hub" in services.store.users()
    issue_credentials(services.store, ["NS-DEV-1"])
    assert "NS-DEV-1" in services.store.users()
    assert "NS-DEV-1" not in services.store.services_file.read_text()  # devices never enter the services file
    assert services.store.remove_device("NS-DEV-1")


async def test_a_device_cannot_log_in_on_the_services_listener(world, services):
    """Finding 12: there a device could take over any client id (the hub's workers' included)."""
    await world.resident("R1")
    secret = await world.device("LST-WB1", "wristband", "R1")
    hub = aiomqtt.Client("127.0.0.1", services.broker.port, username="hub", password=services.hub_password,
                         identifier="hub-victim-12")
    await hub.__aenter__()
    try:
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", services.broker.port, username="LST-WB1", password=secret,
                                      identifier="hub-victim-12"):
                pass
        await asyncio.sleep(0.3)
        await hub.publish("t/none/v1/ping", b"{}", qos=1, timeout=2)  # still connected: nobody took it over
    finally:
        await hub.__aexit__(None, None, None)


async def test_device_meta_is_bounded(running_hub, world, settings, login):
    """Finding 14b: a 5 MB `meta` was accepted and then returned by every GET /api/devices."""
    base = f"http://127.0.0.1:{settings.api_port}"
    headers = await _operator(world, login, base)
    async with httpx.AsyncClient(base_url=base, headers=headers) as http:
        big = await http.post("/api/devices", json={"id": "META-1", "type": "wristband", "resident_id": "R1",
                                                    "meta": {"notes": "x" * 5000}})
        small = await http.post("/api/devices", json={"id": "META-2", "type": "wristband", "resident_id": "R1",
                                                      "meta": {"model": "W1", "firmware": "1.2.3"}})
        listed = await http.get("/api/devices")
    assert big.status_code == 422, big.text
    assert "at most 4096" in big.text
    assert small.status_code == 201, small.text
    assert [d["id"] for d in listed.json()["items"]] == ["META-2"]
