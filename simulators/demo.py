"""The demo fleet of `make run`: seeded households whose devices publish through the real broker."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiomqtt
from psycopg import AsyncConnection

from devices.credentials import CredentialStore
from devices.provisioning import issue_credentials, provision
from hub.users import create_user
from simulators.native import message, topic

log = logging.getLogger(__name__)

REGIONS = [
    ("sz", "city", "深圳市", "Shenzhen"),
    ("sz/futian", "district", "福田区", "Futian"),
    ("sz/futian/lianhua", "community", "莲花社区", "Lianhua"),
    ("sz/nanshan", "district", "南山区", "Nanshan"),
    ("sz/nanshan/shekou", "community", "蛇口社区", "Shekou"),
]
COMMUNITIES = [("sz/futian/lianhua", 22.5535, 114.0537), ("sz/nanshan/shekou", 22.4831, 113.9187)]
SURNAMES = "王李张刘陈杨黄赵吴周"
GIVEN = ["秀英", "桂兰", "建国", "淑珍", "德明", "玉梅", "志强", "凤英", "国华", "丽华"]
HOME_KIT = [("door", "entrance"), ("motion", "living_room"), ("motion", "bathroom"), ("motion", "bedroom"),
            ("bed", "bedroom"), ("radar", "bathroom")]


@dataclass
class DemoDevice:
    """One simulated device and its broker credentials."""

    device_id: str
    device_type: str
    room: str | None
    password: str
    resident_id: str
    lat: float
    lon: float


async def seed(conn: AsyncConnection[Any], store: CredentialStore, households: int,
               rng: random.Random) -> list[DemoDevice]:
    """Create regions, households, residents, contacts, users and devices for the demo."""
    for path, level, name, name_en in REGIONS:
        await conn.execute(
            "INSERT INTO regions (path, level, name, name_en) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (path, level, name, name_en))
    await create_user(conn, "demo", "demo", "operator", display_name="Demo operator")
    workers = {}
    for i, (path, _, _) in enumerate(COMMUNITIES, 1):
        workers[path] = await create_user(conn, f"worker{i}", f"worker{i}", "community_worker", scope_path=path,
                                          display_name=f"社区工作人员{i}")
    devices: list[DemoDevice] = []
    for h in range(1, households + 1):
        path, lat0, lon0 = COMMUNITIES[(h - 1) % len(COMMUNITIES)]
        hid, rid = f"H{h:04d}", f"R{h:04d}"
        lat, lon = lat0 + rng.uniform(-0.01, 0.01), lon0 + rng.uniform(-0.01, 0.01)
        await conn.execute(
            "INSERT INTO households (id, region_path, address, lat, lon) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO NOTHING", (hid, path, f"示例路{h}号", lat, lon))
        name = rng.choice(SURNAMES) + rng.choice(GIVEN)
        flags = ["living_alone"] + (["dementia"] if h % 3 == 0 else []) + (["chronic_illness"] if h % 2 else [])
        await conn.execute(
            "INSERT INTO residents (id, household_id, name, birth_year, medical_notes, risk_flags,"
            " community_worker_id) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
            (rid, hid, name, rng.randint(1935, 1955), "高血压 hypertension", flags, workers[path]))
        await conn.execute(
            "INSERT INTO contacts (resident_id, position, name, relation, phone) VALUES (%s, 1, %s, '子女', %s)"
            " ON CONFLICT DO NOTHING", (rid, name[0] + "先生", f"138{h:08d}"))
        kit = [("wristband", None), *HOME_KIT]
        for i, (dtype, room) in enumerate(kit):
            did = f"{dtype[:2].upper()}{h:04d}{i}"
            await provision(conn, did, dtype, resident_id=rid, household_id=hid, room=room,
                            meta={"exit": room == "entrance"})
            devices.append(DemoDevice(did, dtype, room, "", rid, lat, lon))
    passwords = issue_credentials(store, [d.device_id for d in devices])
    for d in devices:
        d.password = passwords[d.device_id]
    return devices


def save(devices: list[DemoDevice], path: Path) -> None:
    """Keep the fleet's credentials for the next run (mode 600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(d) for d in devices], ensure_ascii=False))
    path.chmod(0o600)


def load(path: Path) -> list[DemoDevice]:
    """The fleet saved by a previous run."""
    return [DemoDevice(**d) for d in json.loads(path.read_text())]


async def run_device(device: DemoDevice, host: str, port: int, root: str, rng: random.Random,
                     sos_every_s: float, stop: asyncio.Event) -> None:
    """One device's life: availability, periodic state, and now and then an SOS press."""
    avail = topic(root, device.device_type, device.device_id, "availability")
    will = aiomqtt.Will(avail, json.dumps({"v": 1, "state": "offline"}), qos=1, retain=True)
    while not stop.is_set():
        try:
            async with aiomqtt.Client(host, port, identifier=device.device_id, username=device.device_id,
                                      password=device.password, will=will, keepalive=30) as client:
                await client.publish(avail, json.dumps({"v": 1, "state": "online"}), qos=1, retain=True)
                await _live(client, device, root, rng, sos_every_s, stop)
        except aiomqtt.MqttError as err:
            log.warning("demo device %s lost the broker (%s); reconnecting", device.device_id, err)
            await asyncio.sleep(rng.uniform(1, 5))


async def _live(client: aiomqtt.Client, d: DemoDevice, root: str, rng: random.Random, sos_every_s: float,
                stop: asyncio.Event) -> None:
    battery = rng.uniform(60, 100)
    first_sos = rng.uniform(15, min(sos_every_s, 90))  # the demo shows an alert within two minutes
    elapsed = 0.0
    while not stop.is_set():
        period = rng.uniform(8, 15)
        try:
            await asyncio.wait_for(stop.wait(), period)
            return
        except TimeoutError:
            pass
        elapsed += period
        battery = max(5.0, battery - 0.05)
        if d.device_type == "wristband":
            await client.publish(topic(root, "wristband", d.device_id, "heartbeat"),
                                 message({"battery": round(battery, 1), "signal": -70, "worn": True}))
            await client.publish(topic(root, "wristband", d.device_id, "vitals"),
                                 message({"heart_rate": rng.randint(60, 95)}))
            if elapsed >= first_sos:
                first_sos = elapsed + rng.uniform(sos_every_s / 2, sos_every_s * 1.5)
                fix = rng.random() < 0.8
                loc = {"lat": d.lat + rng.uniform(-1e-3, 1e-3), "lon": d.lon + rng.uniform(-1e-3, 1e-3),
                       "acc_m": 8, "src": "gnss"} if fix else None
                await client.publish(topic(root, "wristband", d.device_id, "sos"),
                                     message({"location": loc}), qos=1)
        elif d.device_type == "motion":
            await client.publish(topic(root, "motion", d.device_id, "state"),
                                 message({"motion": rng.random() < 0.6, "battery": round(battery)}), qos=1)
        elif d.device_type == "door":
            await client.publish(topic(root, "door", d.device_id, "state"),
                                 message({"contact": rng.choice(["open", "closed", "closed"])}), qos=1)
        elif d.device_type == "bed":
            await client.publish(topic(root, "bed", d.device_id, "state"),
                                 message({"occupied": rng.random() < 0.3}), qos=1)
        elif d.device_type == "radar":
            await client.publish(topic(root, "radar", d.device_id, "state"),
                                 message({"presence": rng.random() < 0.5, "fall": "none"}), qos=1)


async def run_fleet(devices: list[DemoDevice], host: str, port: int, root: str, stop: asyncio.Event,
                    seed_value: int = 7, sos_every_s: float = 300) -> None:
    """Run every demo device until `stop` is set."""
    rng = random.Random(seed_value)
    async with asyncio.TaskGroup() as tg:
        for d in devices:
            tg.create_task(run_device(d, host, port, root, random.Random(rng.random()), sos_every_s, stop))
