"""Tests for devices/watch3g/bridge.py: frames to native v1 messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from devices.watch3g import (
    Cell,
    Location,
    WatchBridge,
    Wifi,
    build_al,
    build_lk,
    build_ud,
    build_vitals,
    encode_status,
    frame_messages,
    parse_frame,
)
from devices.watch3g.bridge import availability_message

TS = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
NOW = TS.timestamp() + 5
DEV = "8800000015"
KNOWN = Location(48.1, 11.5, accuracy_m=8.0, time=datetime(2024, 3, 1, 9, 0, tzinfo=UTC))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def kinds(messages: list) -> list[str]:
    return [m.topic.rsplit("/", 1)[1] for m in messages]


def by_kind(messages: list, kind: str) -> dict:
    [payload] = [m.payload for m in messages if m.topic.endswith("/" + kind)]
    return payload


def test_sos_without_fix_carries_last_known_location_and_all_alarms() -> None:
    frame = parse_frame(build_al(DEV, TS, 0, 0, False, 12, encode_status(["sos", "low_battery"]),
                                 cells=[Cell(460, 0, 9336, 3981, 141)]))
    messages = frame_messages(frame, received_at=NOW, last_known=KNOWN)
    assert kinds(messages) == ["sos", "alarm", "location", "heartbeat"]
    sos = messages[0]
    assert sos.topic == f"eldercare/v1/watch3g/{DEV}/sos"
    assert (sos.qos, sos.retain) == (1, False)
    assert sos.payload["v"] == 1
    assert sos.payload["ts"] == TS.timestamp()
    assert sos.payload["alarms"] == ["low_battery", "sos"]
    assert sos.payload["location"] is None
    assert sos.payload["last_known_location"] == {
        "lat": 48.1, "lon": 11.5, "acc_m": 8.0, "src": "gnss", "ts": KNOWN.time.timestamp()}  # type: ignore[union-attr]
    assert by_kind(messages, "alarm")["alarms"] == ["low_battery"]
    location = by_kind(messages, "location")
    assert (location["lat"], location["src"]) == (None, "cell")
    assert location["cells"] == [{"mcc": 460, "mnc": 0, "lac": 9336, "cid": 3981, "rssi": 141}]


def test_fall_with_fix() -> None:
    frame = parse_frame(build_al(DEV, TS, 47.08, 15.48, True, 44, encode_status(["fall", "removed"]),
                                 accuracy_m=20.0))
    messages = frame_messages(frame, received_at=NOW, last_known=KNOWN)
    assert kinds(messages) == ["fall", "alarm", "location", "heartbeat"]
    fall = messages[0]
    assert fall.qos == 1
    assert fall.payload["confidence"] == 1.0
    assert fall.payload["location"] == {"lat": 47.08, "lon": 15.48, "acc_m": 20.0, "src": "gnss"}
    assert fall.payload["last_known_location"] is None
    assert by_kind(messages, "alarm")["alarms"] == ["removed"]
    assert by_kind(messages, "heartbeat")["worn"] is False


def test_sos_and_fall_together_give_both_messages() -> None:
    frame = parse_frame(build_al(DEV, TS, 0, 0, False, 50, encode_status(["sos", "fall"])))
    assert kinds(frame_messages(frame, received_at=NOW)) == ["sos", "fall", "heartbeat"]


def test_al_frame_without_known_alarm_bits_still_raises_an_alarm() -> None:
    frame = parse_frame(build_al(DEV, TS, 0, 0, False, 50, 1 << 22))
    messages = frame_messages(frame, received_at=NOW)
    assert kinds(messages) == ["alarm", "heartbeat"]
    assert messages[0].payload["alarms"] == []


def test_ud_with_fix_gives_location_and_heartbeat_at_qos_0() -> None:
    frame = parse_frame(build_ud(DEV, TS, 22.5, 113.9, True, 64, 0, signal=75, steps=900))
    messages = frame_messages(frame, received_at=NOW)
    assert kinds(messages) == ["location", "heartbeat"]
    assert all(m.qos == 0 for m in messages)
    assert by_kind(messages, "location") == {
        "v": 1, "id": messages[0].payload["id"], "ts": TS.timestamp(),
        "lat": 22.5, "lon": 113.9, "acc_m": None, "src": "gnss"}
    assert by_kind(messages, "heartbeat") | {"id": None} == {
        "v": 1, "id": None, "ts": TS.timestamp(), "battery": 64, "signal": 75, "worn": None, "steps": 900}


def test_ud_without_fix_and_with_wifi_publishes_unresolved_wifi_location_without_names() -> None:
    frame = parse_frame(build_ud(DEV, TS, 0, 0, False, 64, 0, wifis=[Wifi("aa:bb:cc:dd:ee:ff", -60, "Home")]))
    location = by_kind(frame_messages(frame, received_at=NOW), "location")
    assert location["src"] == "wifi"
    assert location["wifis"] == [{"mac": "aa:bb:cc:dd:ee:ff", "rssi": -60}]
    assert "Home" not in json.dumps(location)


def test_ud_without_fix_or_radio_data_publishes_no_location() -> None:
    frame = parse_frame(build_ud(DEV, TS, 0, 0, False, 64, 0))
    assert kinds(frame_messages(frame, received_at=NOW)) == ["heartbeat"]


def test_lk_and_vitals() -> None:
    lk = frame_messages(parse_frame(build_lk(DEV, battery=33, steps=12)), received_at=NOW)
    assert kinds(lk) == ["heartbeat"]
    assert lk[0].payload["ts"] == NOW
    assert (lk[0].payload["battery"], lk[0].payload["steps"], lk[0].payload["signal"]) == (33, 12, None)
    vitals = frame_messages(parse_frame(build_vitals(DEV, heart_rate=70, systolic=125, diastolic=82)),
                            received_at=NOW)
    assert kinds(vitals) == ["vitals"]
    assert {k: vitals[0].payload[k] for k in ("heart_rate", "systolic", "diastolic")} == {
        "heart_rate": 70, "systolic": 125, "diastolic": 82}
    assert frame_messages(parse_frame(build_vitals(DEV, heart_rate=0)), received_at=NOW) == []


def test_ids_are_deterministic_per_frame_and_distinct_per_kind() -> None:
    raw = build_al(DEV, TS, 0, 0, False, 50, encode_status(["sos"]))
    first = frame_messages(parse_frame(raw), received_at=NOW)
    resent = frame_messages(parse_frame(raw), received_at=NOW + 30)
    assert [m.payload["id"] for m in first] == [m.payload["id"] for m in resent]
    assert len({m.payload["id"] for m in first}) == len(first)
    later = build_al(DEV, TS.replace(second=1), 0, 0, False, 50, encode_status(["sos"]))
    other = frame_messages(parse_frame(later), received_at=NOW)
    assert other[0].payload["id"] != first[0].payload["id"]


def test_repeated_lk_frames_are_new_observations() -> None:
    raw = build_lk(DEV, battery=50)
    a = frame_messages(parse_frame(raw), received_at=NOW)[0].payload["id"]
    b = frame_messages(parse_frame(raw), received_at=NOW + 300)[0].payload["id"]
    assert a != b


def test_implausible_device_time_falls_back_to_arrival_time() -> None:
    future = datetime(2031, 1, 1, tzinfo=UTC)
    frame = parse_frame(build_al(DEV, future, 0, 0, False, 50, encode_status(["sos"])))
    assert frame_messages(frame, received_at=NOW)[0].payload["ts"] == NOW


def test_availability_is_retained() -> None:
    message = availability_message(DEV, True)
    assert message.topic == f"eldercare/v1/watch3g/{DEV}/availability"
    assert (message.payload, message.qos, message.retain) == ({"v": 1, "state": "online"}, 1, True)


@pytest.mark.anyio
async def test_watch_bridge_publishes_json_bytes() -> None:
    sent: list[tuple[str, bytes, int, bool]] = []

    async def publish(topic: str, payload: bytes, qos: int, retain: bool) -> None:
        sent.append((topic, payload, qos, retain))

    bridge = WatchBridge(publish, last_known=lambda _d: KNOWN, clock=lambda: NOW)
    await bridge.on_online(DEV)
    await bridge.on_frame(parse_frame(build_al(DEV, TS, 0, 0, False, 50, encode_status(["sos"]))))
    await bridge.on_offline(DEV)
    suffixes = [t.rsplit("/", 1)[1] for t, _, _, _ in sent]
    assert suffixes == ["availability", "sos", "heartbeat", "availability"]
    sos = json.loads(sent[1][1])
    assert sos["last_known_location"]["lat"] == 48.1
    assert json.loads(sent[-1][1]) == {"v": 1, "state": "offline"}
    assert sent[-1][3] is True


def test_messages_are_accepted_by_the_hub_watch3g_device_type() -> None:
    device_types = pytest.importorskip("devices.types.watch3g")
    frames = [
        build_al(DEV, TS, 0, 0, False, 12, encode_status(["sos", "low_battery"]),
                 cells=[Cell(460, 0, 1, 2, 3)]),
        build_al(DEV, TS, 47.08, 15.48, True, 44, encode_status(["fall", "removed"])),
        build_ud(DEV, TS, 22.5, 113.9, True, 64, 0, wifis=[Wifi("aa:bb:cc:dd:ee:ff", -60)]),
        build_lk(DEV, battery=33),
        build_vitals(DEV, heart_rate=70, systolic=125, diastolic=82),
    ]
    now = datetime.fromtimestamp(NOW, UTC)
    for raw in frames:
        for message in frame_messages(parse_frame(raw), received_at=NOW, last_known=KNOWN):
            suffix = message.topic.rsplit("/", 1)[1]
            body = json.dumps(message.payload).encode()
            device_types.DEVICE_TYPE.decode(DEV, suffix, body, now, 300.0)
