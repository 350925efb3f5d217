"""Property tests: every registered device type's decoder, for every message, raises only DecodeError."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.device_type import DeviceType
from devices.errors import DecodeError
from devices.fields import COMMON_STATUS
from devices.observation import Observation
from devices.registry import device_types

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Every key some decoder reads, so random objects hit the field checks and not only "missing_id".
KEYS = ["v", "id", "ts", "device", "location", "alarms", "last_known_location", "lat", "lon", "acc_m", "src",
        "rate_hz", "scale", "x", "y", "z", "confidence", "worn", "steps", "heart_rate", "systolic", "diastolic",
        "spo2", "temperature", "battery", "battery_low", "tamper", "signal", "state", "contact", "motion",
        "illuminance", "occupied", "presence", "fall", "breath_rate", "leak", "smoke", "online"]

EXTREME_NUMBERS = st.sampled_from([0, -1, 1, 2**63, -(2**63), 10**400, -(10**400), 1e308, -1e308, 5e-324,
                                   math.nan, math.inf, -math.inf, 946684800, 4102444800, 1795400000.5])
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | EXTREME_NUMBERS
           | st.text(max_size=30) | st.sampled_from(["open", "closed", "online", "offline", "gnss", "fall",
                                                      "maybe_fall", "sos", "2026-11-23T08:00:00+08:00",
                                                      "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                                                      "2026-11-23T08:00:00"]))
JSONISH = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5)
                       | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5),
                       max_leaves=20)


WEARABLE_EXTRA_KEYS = ("alarms", "last_known_location", "lat", "lon", "acc_m", "src", "rate_hz", "scale",
                       "x", "y", "z")


BASES: dict[str, dict[str, Any]] = {
    "imu": {"rate_hz": 50, "scale": 0.000244, "x": [12, 15], "y": [-4090, -4101], "z": [220, 230]},
    "location": {"lat": 22.5431, "lon": 114.0579, "acc_m": 35, "src": "wifi"},
    "sos": {"location": {"lat": 22.5, "lon": 114.0, "acc_m": 8, "src": "gnss"}, "alarms": ["sos"]},
    "state": {"contact": "open", "motion": True, "occupied": True, "presence": True, "leak": False, "smoke": False},
}


def _messages() -> list[tuple[str, str]]:
    return [(key, suffix) for key, device_type in device_types().items()
            for suffix in [*device_type.messages, "availability", "nonsense"]]


def _payload(base: dict[str, Any], mutations: dict[str, Any], drop: list[str]) -> dict[str, Any]:
    payload = {**base, **mutations}
    for key in drop:
        payload.pop(key, None)
    return payload


def _base(device_type: DeviceType, suffix: str) -> dict[str, Any]:
    """A valid-looking start, so mutations reach deep checks."""
    sample = dict(BASES.get(suffix, {}))
    return {"v": 1, "id": "m-1", "ts": 1795400000.5, **sample}


def decode_or_decode_error(device_type: DeviceType, suffix: str, raw: bytes) -> None:
    """Decoding either yields a sane observation or raises DecodeError; nothing else may escape."""
    try:
        obs = device_type.decode("DEV-1", suffix, raw, NOW, 300.0)
    except DecodeError as err:
        assert err.reason and " " not in err.reason
        return
    assert isinstance(obs, Observation)
    assert obs.device_id == "DEV-1"
    assert 0 < len(obs.msg_id) <= 64
    assert (obs.ts - NOW).total_seconds() <= 300.0
    assert all(math.isfinite(value) for _, value in obs.readings)
    if obs.location is not None:
        assert -90 <= obs.location.lat <= 90
        assert -180 <= obs.location.lon <= 180


@pytest.mark.parametrize(("type_key", "suffix"), _messages())
@FAST
@given(raw=st.binary(max_size=300))
def test_raw_bytes_raise_only_decode_error(type_key: str, suffix: str, raw: bytes) -> None:
    decode_or_decode_error(device_types().get(type_key), suffix, raw)


def _own_keys(device_type: DeviceType, suffix: str) -> list[str]:
    """The keys this message reads: mutating these reaches its checks far more often than any key."""
    try:
        message = device_type.message(suffix)
    except DecodeError:
        return ["v", "id"]
    names = [spec.name for spec in message.fields + (COMMON_STATUS if message.status_fields else ())]
    return sorted({"v", "id", "ts", "device", "location", *names, *_base(device_type, suffix),
                   *(WEARABLE_EXTRA_KEYS if device_type.category == "wearable" else ())})


@pytest.mark.parametrize(("type_key", "suffix"), _messages())
@FAST
@given(data=st.data())
def test_jsonish_payloads_raise_only_decode_error(type_key: str, suffix: str, data: st.DataObject) -> None:
    device_type = device_types().get(type_key)
    own = st.sampled_from(_own_keys(device_type, suffix))
    mutations = data.draw(st.dictionaries(own | st.sampled_from(KEYS), JSONISH, max_size=4))
    drop = data.draw(st.lists(own, max_size=2))
    payload = _payload(_base(device_type, suffix), mutations, drop)
    # allow_nan: NaN/Infinity literals are what a broken firmware sends; the decoder must refuse them.
    decode_or_decode_error(device_type, suffix, json.dumps(payload, allow_nan=True).encode())


@pytest.mark.parametrize(("type_key", "suffix"), _messages())
@FAST
@given(value=JSONISH)
def test_any_json_document_raises_only_decode_error(type_key: str, suffix: str, value: Any) -> None:
    decode_or_decode_error(device_types().get(type_key), suffix, json.dumps(value, allow_nan=True).encode())


# Found by the properties above: each once escaped the decoder as OverflowError, which is not a dead
# letter but an exception in the ingestion loop.
REGRESSIONS = [
    ("wristband", "vitals", {"heart_rate": 10**400}),
    ("wristband", "imu", {"rate_hz": 50, "x": [10**400], "y": [1], "z": [1]}),
    ("wristband", "heartbeat", {"ts": "0001-01-01T00:00:00+01:00"}),
    ("wristband", "heartbeat", {"ts": "9999-12-31T23:59:59-01:00"}),
    ("door", "state", {"contact": "open", "ts": 10**400}),
    ("wristband", "location", {"lat": 10**400, "lon": 1}),
]


@pytest.mark.parametrize(("type_key", "suffix", "fields"), REGRESSIONS)
def test_found_overflows_are_decode_errors(type_key: str, suffix: str, fields: dict[str, Any]) -> None:
    raw = json.dumps({"v": 1, "id": "m-1", **fields}).encode()
    with pytest.raises(DecodeError):
        device_types().get(type_key).decode("DEV-1", suffix, raw, NOW, 300.0)


def test_zigbee2mqtt_huge_linkquality_is_clamped() -> None:
    from devices.gateways.zigbee2mqtt import Z2mTopic, translate

    for lq in (10**400, -(10**400)):
        message, native = translate("door", Z2mTopic("hall/door", False), json.dumps({"linkquality": lq}).encode(),
                                    NOW.timestamp())
        obs = device_types().get("door").decode("DEV-1", message, native, NOW, 300.0)
        assert obs.status["signal"] in {0.0, 100.0}


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"a":' * 50_000, b"\xff\xfe{}", b'{"v":1e999999}'])
def test_pathological_documents(raw: bytes) -> None:
    for type_key, suffix in _messages():
        decode_or_decode_error(device_types().get(type_key), suffix, raw)
