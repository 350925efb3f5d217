"""zigbee2mqtt: real payload fields and both availability formats become native observations."""

from __future__ import annotations

import contextlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.errors import DecodeError
from devices.gateways.zigbee2mqtt import Z2mTopic, parse_topic, translate
from devices.registry import device_types

CAPTURES = json.loads((Path(__file__).parent / "z2m_payloads.json").read_text())
NOW = datetime.now(UTC)


def decode(device_type: str, topic: Z2mTopic, raw: bytes):
    message, native = translate(device_type, topic, raw, NOW.timestamp())
    return message, device_types().get(device_type).decode("D1", message, native, NOW, 300)


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_capture_decodes(name):
    case = CAPTURES[name]
    message, obs = decode(case["type"], Z2mTopic("hall/sensor", False), json.dumps(case["payload"]).encode())
    assert message == case["message"]
    merged = {**obs.data, **obs.status}
    for key, value in case["expect"].items():
        assert merged[key] == value
    assert obs.critical is case.get("critical", False)
    if "linkquality" in case["payload"]:
        assert 0 <= obs.status["signal"] <= 100


def test_topics_with_slashes_in_friendly_names():
    assert parse_topic("zigbee2mqtt/flat 3/living room/door", "zigbee2mqtt") == Z2mTopic("flat 3/living room/door",
                                                                                        False)
    assert parse_topic("zigbee2mqtt/flat 3/door/availability", "zigbee2mqtt") == Z2mTopic("flat 3/door", True)
    assert parse_topic("zigbee2mqtt/bridge/state", "zigbee2mqtt") is None
    assert parse_topic("zigbee2mqtt/flat 3/door/set", "zigbee2mqtt") is None
    assert parse_topic("other/x", "zigbee2mqtt") is None


@pytest.mark.parametrize("raw", [b"online", b'{"state":"online"}'])
def test_both_availability_formats(raw):
    message, obs = decode("door", Z2mTopic("door", True), raw)
    assert message == "availability"
    assert obs.status["online"] is True


def test_offline_availability():
    _, obs = decode("door", Z2mTopic("door", True), b'{"state":"offline"}')
    assert obs.status["online"] is False


def test_bad_fields_are_decode_errors():
    with pytest.raises(DecodeError, match="contact"):
        decode("door", Z2mTopic("door", False), b'{"contact":"yes"}')
    with pytest.raises(DecodeError, match="fall_down_status"):
        decode("radar", Z2mTopic("r", False), b'{"fall_down_status":"somersault"}')


@settings(max_examples=300, deadline=None)
@given(device_type=st.sampled_from(device_types().keys()), availability=st.booleans(),
       raw=st.one_of(st.binary(max_size=200),
                     st.dictionaries(st.sampled_from(["contact", "occupancy", "battery", "linkquality", "smoke",
                                                      "water_leak", "action", "presence", "fall_down_status",
                                                      "tamper", "battery_low"]),
                                     st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                                               st.text(max_size=10)), max_size=6)
                     .map(lambda d: json.dumps(d).encode())))
def test_fuzz_only_decode_errors_escape(device_type, availability, raw):
    with contextlib.suppress(DecodeError):
        decode(device_type, Z2mTopic("x", availability), raw)


@pytest.mark.anyio
async def test_zigbee_panic_button_raises_sos_end_to_end(running_hub, world, services, settings, devices):
    rid = await world.resident("R1")
    async with await psycopg.AsyncConnection.connect(settings.db_url) as conn:
        from devices.provisioning import provision

        await provision(conn, "PB1", "panic_button", resident_id=rid, room="bathroom",
                        meta={"z2m_name": "flat 1/bathroom/button"})
    services.store.set_password("zigbee2mqtt", "z2m-secret")
    client = await devices.connect("zigbee2mqtt", "z2m-secret")
    base = settings.zigbee2mqtt_base_topic
    try:
        await client.publish(f"{base}/flat 1/bathroom/button/availability", b"online", qos=1)
        await client.publish(f"{base}/flat 1/bathroom/button",
                             json.dumps(CAPTURES["panic_button"]["payload"]).encode(), qos=1)
        await client.publish(f"{base}/bridge/state", b'{"state":"online"}', qos=1)
    finally:
        await client.__aexit__(None, None, None)
    deadline = time.monotonic() + 5
    async with await psycopg.AsyncConnection.connect(settings.db_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            alert = await (await conn.execute("SELECT type, severity, source_device FROM alerts")).fetchone()
            online = await (await conn.execute("SELECT online FROM device_status WHERE device_id='PB1'")).fetchone()
            if alert and online:
                break
    assert alert == ("sos", "critical", "PB1")
    assert online == (True,)
    assert running_hub.health.counters.get("ignored", 0) == 1  # the bridge message
