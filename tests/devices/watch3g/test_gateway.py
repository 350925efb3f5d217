"""Tests for devices/watch3g/gateway.py over real loopback TCP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from devices.watch3g import Frame, WatchGateway, build_al, build_lk, build_ud, encode_status

TS = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
A, B = "8800000015", "9705141740"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recorder:
    """Collects what the gateway hands to its callbacks."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.errors: list[tuple[str | None, str, bytes]] = []
        self.presence: list[tuple[str, str]] = []
        self.fail_alarms = False
        self.changed = asyncio.Event()

    async def on_frame(self, frame: Frame) -> None:
        if self.fail_alarms and frame.kind.startswith("AL"):
            raise ConnectionError("broker down")
        self.frames.append(frame)
        self.changed.set()

    async def on_error(self, device_id: str | None, reason: str, raw: bytes) -> None:
        self.errors.append((device_id, reason, raw))
        self.changed.set()

    async def on_online(self, device_id: str) -> None:
        self.presence.append(("online", device_id))
        self.changed.set()

    async def on_offline(self, device_id: str) -> None:
        self.presence.append(("offline", device_id))
        self.changed.set()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(3.0):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def setup() -> AsyncIterator[tuple[WatchGateway, Recorder]]:
    rec = Recorder()
    gateway = WatchGateway(rec.on_frame, on_error=rec.on_error, on_online=rec.on_online,
                           on_offline=rec.on_offline, port=0, quiet_flush=0.2, idle_timeout=5.0)
    async with gateway:
        yield gateway, rec


async def connect(gateway: WatchGateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", gateway.port)


async def expect(reader: asyncio.StreamReader, data: bytes) -> None:
    assert await asyncio.wait_for(reader.readexactly(len(data)), 3.0) == data


async def expect_nothing(reader: asyncio.StreamReader, wait: float = 0.3) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), wait)


async def send_in_pieces(writer: asyncio.StreamWriter, data: bytes, *cuts: int) -> None:
    last = 0
    for cut in [*cuts, len(data)]:
        writer.write(data[last:cut])
        await writer.drain()
        await asyncio.sleep(0.01)
        last = cut


@pytest.mark.anyio
async def test_session_with_acks_errors_and_a_second_watch(setup: tuple[WatchGateway, Recorder]) -> None:
    gateway, rec = setup
    ra, wa = await connect(gateway)
    rb, wb = await connect(gateway)

    lk = build_lk(A, battery=80, steps=10)
    await send_in_pieces(wa, lk, 5, 17)
    await expect(ra, f"[3G*{A}*0002*LK]".encode())

    ud = build_ud(A, TS, 22.5, 113.9, True, 80, 0)
    al = build_al(A, TS, 0, 0, False, 80, encode_status(["sos"]), kind="AL_LTE")
    await send_in_pieces(wa, ud + al, 40, len(ud) + 7)
    await expect(ra, f"[3G*{A}*0002*AL]".encode())

    # A malformed frame on A and a good one on B at the same time.
    wa.write(f"[3G*{A}*0040*AL,010124,101010,A,1,N,1,E,0,0,0,0,100,50,0,0,zz]".encode())
    await wa.drain()
    await send_in_pieces(wb, build_lk(B, battery=55), 3)
    await expect(rb, f"[3G*{B}*0002*LK]".encode())
    await rec.wait_for(lambda: bool(rec.errors))
    device, reason, raw = rec.errors[0]
    assert device == A
    assert reason.startswith("bad_status")
    assert len(raw) <= 64

    # A is still served after its malformed frame.
    await send_in_pieces(wa, build_lk(A))
    await expect(ra, f"[3G*{A}*0002*LK]".encode())

    await rec.wait_for(lambda: len(rec.frames) == 5)
    assert [(f.device_id, f.kind) for f in rec.frames if f.device_id == A] == [
        (A, "LK"), (A, "UD"), (A, "AL_LTE"), (A, "LK")]
    assert rec.frames[2].alarms == {"sos"}
    assert set(rec.presence) == {("online", A), ("online", B)}
    assert gateway.connected_devices == {A, B}

    known = gateway.last_known_location(A)
    assert known is not None
    assert (known.lat, known.lon, known.time) == (22.5, 113.9, TS)
    assert gateway.last_known_location(B) is None

    wa.close()
    await rec.wait_for(lambda: ("offline", A) in rec.presence)
    assert gateway.connected_devices == {B}
    wb.close()


@pytest.mark.anyio
async def test_alarm_is_acknowledged_only_after_the_sink_took_it(
        setup: tuple[WatchGateway, Recorder]) -> None:
    gateway, rec = setup
    reader, writer = await connect(gateway)
    al = build_al(A, TS, 0, 0, False, 50, encode_status(["fall"]))
    rec.fail_alarms = True
    writer.write(al)
    await writer.drain()
    await expect_nothing(reader)
    assert any(reason.startswith("sink_failed") for _, reason, _ in rec.errors)
    rec.fail_alarms = False
    writer.write(al)  # the watch resends
    await writer.drain()
    await expect(reader, f"[3G*{A}*0002*AL]".encode())
    writer.close()


@pytest.mark.anyio
async def test_garbage_is_reported_and_frames_around_it_survive(setup: tuple[WatchGateway, Recorder]) -> None:
    gateway, rec = setup
    reader, writer = await connect(gateway)
    writer.write(b"\x16\x03\x01garbage" + build_lk(A, battery=1) + b"\r\n" + build_lk(A, battery=2))
    await writer.drain()
    await expect(reader, f"[3G*{A}*0002*LK][3G*{A}*0002*LK]".encode())
    await rec.wait_for(lambda: len(rec.frames) == 2 and len(rec.errors) == 2)
    assert [f.battery for f in rec.frames] == [1, 2]
    assert rec.errors[0][0] is None  # before the first frame the connection has no device id
    assert rec.errors[1][0] == A
    writer.close()


@pytest.mark.anyio
async def test_wrong_length_frame_is_settled_when_the_stream_goes_quiet(
        setup: tuple[WatchGateway, Recorder]) -> None:
    gateway, rec = setup
    reader, writer = await connect(gateway)
    writer.write(f"[3G*{A}*00FF*LK,0,0,70]".encode())
    await writer.drain()
    await expect(reader, f"[3G*{A}*0002*LK]".encode())
    assert rec.frames[0].battery == 70
    assert not rec.frames[0].length_ok
    writer.close()


@pytest.mark.anyio
async def test_oversized_frame_closes_only_that_connection() -> None:
    rec = Recorder()
    async with WatchGateway(rec.on_frame, on_error=rec.on_error, max_frame=256) as gateway:
        r1, w1 = await connect(gateway)
        r2, w2 = await connect(gateway)
        w1.write(f"[3G*{A}*FFFF*TK,".encode() + b"x" * 1000)
        await w1.drain()
        assert await asyncio.wait_for(r1.read(), 3.0) == b""
        assert any(reason.startswith("too_long") for _, reason, _ in rec.errors)
        w2.write(build_lk(B))
        await w2.drain()
        await expect(r2, f"[3G*{B}*0002*LK]".encode())
        w1.close()
        w2.close()


@pytest.mark.anyio
async def test_idle_connection_is_closed_and_device_goes_offline() -> None:
    rec = Recorder()
    async with WatchGateway(rec.on_frame, on_online=rec.on_online, on_offline=rec.on_offline,
                            idle_timeout=0.3) as gateway:
        reader, writer = await connect(gateway)
        writer.write(build_lk(A))
        await writer.drain()
        await expect(reader, f"[3G*{A}*0002*LK]".encode())
        assert await asyncio.wait_for(reader.read(), 3.0) == b""
        await rec.wait_for(lambda: ("offline", A) in rec.presence)
        writer.close()


@pytest.mark.anyio
async def test_failing_callbacks_never_break_the_server() -> None:
    async def broken_frame(_frame: Frame) -> None:
        raise RuntimeError("bug in the sink")

    async def broken_error(_d: str | None, _r: str, _b: bytes) -> None:
        raise RuntimeError("bug in the error sink")

    async def broken_presence(_d: str) -> None:
        raise RuntimeError("bug in presence")

    async with WatchGateway(broken_frame, on_error=broken_error, on_online=broken_presence,
                            on_offline=broken_presence) as gateway:
        for _ in range(2):
            reader, writer = await connect(gateway)
            writer.write(b"junk" + build_lk(A))
            await writer.drain()
            await expect(reader, f"[3G*{A}*0002*LK]".encode())
            writer.close()


@pytest.mark.anyio
async def test_close_disconnects_watches_and_reports_them_offline() -> None:
    rec = Recorder()
    gateway = WatchGateway(rec.on_frame, on_online=rec.on_online, on_offline=rec.on_offline)
    await gateway.start()
    reader, writer = await connect(gateway)
    writer.write(build_lk(A))
    await writer.drain()
    await expect(reader, f"[3G*{A}*0002*LK]".encode())
    await gateway.close()
    assert ("offline", A) in rec.presence
    assert await asyncio.wait_for(reader.read(), 3.0) == b""
    writer.close()
