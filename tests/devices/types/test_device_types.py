"""Every device type decodes its payload fixtures (fixtures/<type>.json) and rejects the bad ones with a reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devices.errors import DecodeError
from devices.registry import device_types

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)


def _cases(section: str) -> list[tuple[str, dict]]:
    out = []
    for path in sorted(FIXTURES.glob("*.json")):
        for i, case in enumerate(json.loads(path.read_text())[section]):
            out.append(pytest.param(path.stem, case, id=f"{path.stem}-{case['message']}-{i}"))
    return out


def _raw(case: dict) -> bytes:
    if "raw_hex" in case:
        return bytes.fromhex(case["raw_hex"])
    if "raw" in case:
        return case["raw"].encode()
    return json.dumps(case["payload"]).encode()


def test_every_registered_type_has_fixtures():
    assert sorted(p.stem for p in FIXTURES.glob("*.json")) == device_types().keys()


@pytest.mark.parametrize(("device_type", "case"), _cases("valid"))
def test_valid_payload(device_type, case):
    obs = device_types().get(device_type).decode("DEV1", case["message"], _raw(case), NOW, 300)
    assert obs.kind == case["kind"]
    assert obs.critical is case["critical"]
    for key, value in case.get("data", {}).items():
        assert obs.data[key] == value
    for key, value in case.get("status", {}).items():
        assert obs.status[key] == value
    if "readings" in case:
        assert dict(obs.readings) == case["readings"]
    if "location" in case:
        loc = case["location"]
        assert (obs.location is None) if loc is None else (obs.location.lat, obs.location.lon) == tuple(loc)
    if case["kind"] == "imu":
        assert obs.imu is not None and obs.imu.samples.shape == (case["data"]["n"], 3)
        assert obs.imu.samples[0, 1] == pytest.approx(-4090 * 0.000244, rel=1e-5)


@pytest.mark.parametrize(("device_type", "case"), _cases("invalid"))
def test_invalid_payload(device_type, case):
    with pytest.raises(DecodeError) as info:
        device_types().get(device_type).decode("DEV1", case["message"], _raw(case), NOW, 300)
    assert info.value.reason == case["reason"]
