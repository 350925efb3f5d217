"""The fast decoder gives exactly what each device type's own decoder gives: the observation or the error."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.errors import DecodeError
from devices.fields import Bool, Choice, Num
from devices.observation import Observation
from devices.registry import device_types
from hub.ingest.fastdecode import FastDecoder

FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TYPES = device_types()
NOW = datetime.fromtimestamp(1_790_000_000, UTC)
SKEW = 300.0
ROUTES = sorted({(k, s) for k in TYPES.keys() for s in [*TYPES.get(k).messages, "availability", "nonsense"]})  # noqa: SIM118
IMU = {"rate_hz": 25, "scale": 0.001, "x": [0, 5, -3], "y": [1, 2, 3], "z": [1000, 990, 1010]}
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=70), st.sampled_from(["online", "offline", "on", "off", "open", "closed", "gnss", "sos"]),
    st.lists(st.integers(-2000, 2000), max_size=4), st.just({"lat": 22.5, "lon": 114.0, "acc_m": 10}),
)
KEYS = st.sampled_from(["v", "id", "ts", "device", "battery", "signal", "worn", "tamper", "battery_low", "motion",
                        "contact", "occupied", "presence", "fall", "smoke", "leak", "confidence", "steps",
                        "heart_rate", "location", "lat", "lon", "alarms", "rate_hz", "scale", "x", "y", "z",
                        "state", "illuminance"])
TIMESTAMPS = st.one_of(st.none(), st.just(NOW.timestamp() - 5), st.just(int(NOW.timestamp())),
                       st.just(NOW.timestamp() + SKEW), st.just(NOW.timestamp() + SKEW + 1e-4),
                       st.just(946684800), st.just(4102444800.5), st.just("2026-01-01T00:00:00+00:00"),
                       st.just(True), st.floats())


def _valid_body(type_key: str, suffix: str) -> dict[str, Any]:
    """A payload body the codec accepts: a mid-range value for every declared field."""
    message = TYPES.get(type_key).messages.get(suffix)
    body: dict[str, Any] = {}
    for spec in message.fields if message else ():
        if isinstance(spec, Num):
            body[spec.name] = max(spec.lo, min(spec.hi, 50.0))
        elif isinstance(spec, Bool):
            body[spec.name] = True
        elif isinstance(spec, Choice):
            body[spec.name] = sorted(spec.choices)[0]
    if suffix == "imu":
        body.update(IMU)
    if suffix == "location":
        body.update({"lat": 22.5, "lon": 114.0, "acc_m": 12})
    if suffix in {"sos", "alarm"}:
        body["alarms"] = ["sos"]
    return body


def _outcome(decode: Any) -> Any:
    try:
        obs = decode()
    except DecodeError as err:
        return ("error", err.reason, err.detail)
    assert isinstance(obs, Observation)
    out = []
    for f in fields(obs):
        value = getattr(obs, f.name)
        if f.name == "imu" and value is not None:
            value = (value.rate_hz, value.samples.dtype.str, value.samples.tolist())
        out.append((f.name, value, type(value)))
    return out


def _same(type_key: str, suffix: str, raw: bytes) -> None:
    fast = FastDecoder(TYPES)
    expected = _outcome(lambda: TYPES.get(type_key).decode("DEV1", suffix, raw, NOW, SKEW))
    assert _outcome(lambda: fast.decode(type_key, "DEV1", suffix, raw, NOW, SKEW)) == expected


@FAST
@given(st.sampled_from(ROUTES), st.dictionaries(KEYS, VALUES, max_size=8), TIMESTAMPS,
       st.sampled_from([1, 2, True, 1.0, None]), st.one_of(st.just("m-1"), st.integers(), st.text(max_size=70)))
def test_any_payload_decodes_the_same(route: tuple[str, str], body: dict[str, Any], ts: Any, v: Any,
                                      msg_id: Any) -> None:
    payload = {**body, "v": v, "id": msg_id}
    if ts is not None:
        payload["ts"] = ts
    try:
        raw = json.dumps(payload).encode()
    except ValueError:
        return
    _same(*route, raw)


@FAST
@given(st.sampled_from(ROUTES), st.dictionaries(KEYS, VALUES, max_size=2),
       st.one_of(st.just(NOW.timestamp() - 5), TIMESTAMPS), st.sampled_from(["m-1", "x" * 64, "x" * 65, 7]))
def test_nearly_valid_payloads_decode_the_same(route: tuple[str, str], changes: dict[str, Any], ts: Any,
                                               msg_id: Any) -> None:
    payload = {"v": 1, "id": msg_id, "ts": ts, **_valid_body(*route), **changes}
    try:
        raw = json.dumps(payload).encode()
    except ValueError:
        return
    _same(*route, raw)


@FAST
@given(st.sampled_from(ROUTES), st.binary(max_size=60) | st.sampled_from(
    [b"", b"[]", b"null", b'{"v":1,"id":"a","battery":NaN}', b'\xef\xbb\xbf{"v":1,"id":"a"}', b'{"v":1,"id":"a"',
     b"\xff\xfe", b"[" * 5000]))
def test_malformed_bytes_fail_the_same(route: tuple[str, str], raw: bytes) -> None:
    _same(*route, raw)


def test_the_benchmark_mix_decodes_the_same_and_fast() -> None:
    now = datetime.now(UTC)
    payloads = [
        ("wristband", "heartbeat", {"battery": 70, "signal": -70, "worn": True}),
        ("wristband", "imu", IMU),
        ("wristband", "sos", {"location": {"lat": 22.5, "lon": 114.0, "acc_m": 10}, "alarms": ["sos", "fall"]}),
        ("wristband", "location", {"lat": None, "lon": None}),
        ("motion", "state", {"motion": True, "battery": 80}),
        ("motion", "state", {"motion": True, "battery": 8, "tamper": True, "battery_low": False}),
    ]
    for type_key, suffix, body in payloads:
        for ts in (now.timestamp() - 1, int(now.timestamp()) - 1):
            raw = json.dumps({"v": 1, "id": "x1", "ts": ts, **body}).encode()
            fast = FastDecoder(TYPES)
            expected = _outcome(lambda: TYPES.get(type_key).decode("DEV1", suffix, raw, now, SKEW))  # noqa: B023
            assert _outcome(lambda: fast.decode(type_key, "DEV1", suffix, raw, now, SKEW)) == expected  # noqa: B023
            # ...and by the fast path itself, not by falling back.
            plan = fast._plan(TYPES.get(type_key), suffix)
            assert plan is not None
            assert _outcome(lambda: fast._fast(plan, "DEV1", raw, now, SKEW)) == expected  # noqa: B023
