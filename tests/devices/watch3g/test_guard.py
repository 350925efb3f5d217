"""Issue 17, findings 2 and 8 at the gateway, over real loopback TCP: who may connect, how many, what is believed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from devices.watch3g import WatchGateway, build_al, build_lk, build_ud, encode_status
from devices.watch3g.guard import GatewayLimits, Throttle, distance_m, impossible_move
from devices.watch3g.model import Location
from tests.devices.watch3g.test_gateway import Recorder, expect

pytestmark = pytest.mark.anyio
TS = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
KNOWN, OTHER, STRANGER = "8800000015", "9705141740", "1234567890"
SHENZHEN, BEIJING = (22.5431, 114.0579), (39.9042, 116.4074)


class Duplicates(Recorder):
    """Also records second-connection events."""

    def __init__(self) -> None:
        super().__init__()
        self.duplicates: list[str] = []

    async def on_duplicate(self, device_id: str) -> None:
        self.duplicates.append(device_id)
        self.changed.set()


async def provisioned(imei: str) -> bool:
    return imei in {KNOWN, OTHER}


@pytest.fixture
def start() -> Callable[..., object]:
    """`async with start(**limits) as (gateway, recorder)`: a gateway that knows KNOWN and OTHER only."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def make(**limits: object) -> AsyncIterator[tuple[WatchGateway, Duplicates]]:
        rec = Duplicates()
        gateway = WatchGateway(rec.on_frame, on_error=rec.on_error, on_online=rec.on_online,
                               on_offline=rec.on_offline, on_duplicate=rec.on_duplicate, port=0, quiet_flush=0.2,
                               is_provisioned=provisioned, limits=GatewayLimits(**limits))  # type: ignore[arg-type]
        async with gateway:
            yield gateway, rec
    return make


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """True when the gateway closed the connection (and sent nothing); unread bytes make it a reset."""
    try:
        return await asyncio.wait_for(reader.read(100), 3.0) == b""
    except ConnectionResetError:
        return True


async def test_an_unknown_imei_gets_no_ack_no_delivery_and_is_disconnected(start):
    async with start() as (gateway, rec):
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(b"".join(build_lk(STRANGER, battery=50) for _ in range(100)))
        writer.write(build_al(STRANGER, TS, *BEIJING, True, 80, encode_status(["sos"])))
        await writer.drain()
        assert await closed_by_peer(reader)
        writer.close()
        assert rec.frames == [] and rec.presence == [] and rec.errors == []
        assert gateway.stats.counts == {"unknown_imei": 1}
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(build_lk(KNOWN, battery=50))
        await writer.drain()
        await expect(reader, f"[3G*{KNOWN}*0002*LK]".encode())  # a provisioned one is served as before
        writer.close()


async def test_outside_the_allowed_networks_a_connection_is_closed_at_once(start):
    async with start(allowed_networks=GatewayLimits.parse_networks("10.0.0.0/8, 2001:db8::/32")) as (gateway, rec):
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(build_lk(KNOWN, battery=50))
        await writer.drain()
        assert await closed_by_peer(reader)
        writer.close()
    assert rec.frames == []
    assert gateway.stats.counts == {"refused_network": 1}
    assert GatewayLimits(allowed_networks=GatewayLimits.parse_networks("127.0.0.0/8")).allows("::ffff:127.0.0.9")


async def test_connections_per_address_and_in_all_are_bounded(start):
    async with start(max_per_address=3) as (gateway, _rec):
        held = [await asyncio.open_connection("127.0.0.1", gateway.port) for _ in range(3)]
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        assert await closed_by_peer(reader)
        writer.close()
        r0, w0 = held[0]
        w0.write(build_lk(KNOWN, battery=50))
        await w0.drain()
        await expect(r0, f"[3G*{KNOWN}*0002*LK]".encode())  # the held ones still work
        for _, w in held:
            w.close()
    assert gateway.stats.counts == {"refused_per_address": 1}
    async with start(max_connections=2) as (gateway, _rec):
        held = [await asyncio.open_connection("127.0.0.1", gateway.port) for _ in range(2)]
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        assert await closed_by_peer(reader)
        for _, w in [*held, (reader, writer)]:
            w.close()
    assert gateway.stats.counts == {"refused_max_connections": 1}


async def test_a_connection_that_never_identifies_gets_only_the_hello_time(start):
    async with start(hello_timeout=0.3, idle_timeout=30.0) as (gateway, _rec):
        silent_r, silent_w = await asyncio.open_connection("127.0.0.1", gateway.port)
        watch_r, watch_w = await asyncio.open_connection("127.0.0.1", gateway.port)
        watch_w.write(build_lk(KNOWN, battery=50))
        await watch_w.drain()
        await expect(watch_r, f"[3G*{KNOWN}*0002*LK]".encode())
        assert await closed_by_peer(silent_r)
        with pytest.raises(TimeoutError):  # the identified watch is still connected after the hello time
            await asyncio.wait_for(watch_r.read(1), 0.5)
        silent_w.close()
        watch_w.close()
    assert gateway.stats.counts.get("hello_timeout") == 1


async def test_a_second_connection_replaces_the_first_and_its_sos_is_kept_but_suspect(start):
    async with start() as (gateway, rec):
        real_r, real_w = await asyncio.open_connection("127.0.0.1", gateway.port)
        real_w.write(build_ud(KNOWN, TS, *SHENZHEN, True, 80))
        real_w.write(build_lk(KNOWN, battery=80))
        await real_w.drain()
        await expect(real_r, f"[3G*{KNOWN}*0002*LK]".encode())
        fake_r, fake_w = await asyncio.open_connection("127.0.0.1", gateway.port)
        fake_w.write(build_al(KNOWN, TS, *SHENZHEN, True, 80, encode_status(["sos"])))
        await fake_w.drain()
        await expect(fake_r, f"[3G*{KNOWN}*0002*AL]".encode())  # acknowledged: an SOS is never suppressed
        assert await closed_by_peer(real_r)  # one live connection per IMEI: the older one is closed
        await rec.wait_for(lambda: len(rec.frames) == 3)
        fake_w.close()
        real_w.close()
    sos = rec.frames[-1]
    assert sos.alarms == {"sos"} and sos.suspect == {"second_connection"}
    assert not rec.frames[0].suspect and not rec.frames[1].suspect
    assert rec.duplicates == [KNOWN]
    assert gateway.stats.counts == {"second_connection": 1}
    assert rec.presence[0] == ("online", KNOWN)
    assert ("offline", KNOWN) not in rec.presence[:-1]  # the watch never looked offline meanwhile


async def test_a_fix_it_cannot_have_reached_is_flagged_and_never_trusted(start):
    async with start() as (gateway, rec):
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(build_ud(KNOWN, TS, *SHENZHEN, True, 80))
        writer.write(build_ud(KNOWN, TS, *BEIJING, True, 80))  # 1,900 km a moment later
        writer.write(build_lk(KNOWN, battery=80))
        await writer.drain()
        await expect(reader, f"[3G*{KNOWN}*0002*LK]".encode())
        await rec.wait_for(lambda: len(rec.frames) == 3)
        writer.close()
        trusted = gateway.last_known_location(KNOWN)
    assert rec.frames[1].suspect == {"impossible_speed"}
    assert not rec.frames[0].suspect
    assert trusted is not None and (trusted.lat, trusted.lon) == pytest.approx(SHENZHEN)
    assert gateway.stats.counts == {"impossible_speed": 1}


def test_speed_rule():
    sz, bj = Location(*SHENZHEN, accuracy_m=10), Location(*BEIJING, accuracy_m=10)
    assert distance_m(sz, bj) == pytest.approx(1_943_000, rel=0.01)
    assert impossible_move(sz, bj, 3600)  # 1,943 km in an hour
    assert not impossible_move(sz, bj, 6 * 3600)  # a flight's pace
    near = Location(SHENZHEN[0] + 0.001, SHENZHEN[1], accuracy_m=30)  # 111 m: GNSS noise at once
    assert not impossible_move(sz, near, 0.5)


def test_throttle():
    now = [0.0]
    once = Throttle(60, clock=lambda: now[0])
    assert [once("a"), once("a"), once("b")] == [True, False, True]
    now[0] = 61
    assert once("a")


async def test_roster_lookups_are_throttled_and_cached(db_url):
    """A flood of made-up IMEIs cannot become a flood of queries; a provisioned watch stays accepted."""
    import psycopg

    from devices.watch3g.guard import DbRoster

    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await conn.execute("INSERT INTO regions (path, level, name) VALUES ('sz', 'city', 'sz')")
        await conn.execute("INSERT INTO households (id, region_path) VALUES ('H1', 'sz')")
        await conn.execute("INSERT INTO devices (id, type, household_id) VALUES (%s, 'watch3g', 'H1'),"
                           " ('OLD1', 'watch3g', 'H1')", (KNOWN,))
        await conn.execute("UPDATE devices SET status = 'revoked' WHERE id = 'OLD1'")
    now = [0.0]
    roster = DbRoster(db_url, clock=lambda: now[0], lookups_per_s=2)  # 10 lookups at once, then 2 a second
    try:
        assert await roster(KNOWN)
        assert not await roster("OLD1")  # revoked
        assert [await roster(f"FAKE{i}") for i in range(20)] == [False] * 20
        assert roster.throttled == 12
        assert await roster(KNOWN)  # cached: no lookup needed
    finally:
        await roster.close()
