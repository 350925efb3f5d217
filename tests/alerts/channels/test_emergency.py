"""Emergency dispatch channel against a real loopback HTTP receiver standing in for the telephony gateway."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from alerts.channels import load_channels, parse_channel_config
from alerts.channels.base import Recipient
from alerts.channels.emergency import Config, build
from hub.errors import ConfigError

SECRET = "dispatch-secret-0123456789"
AMBULANCE = Recipient(kind="emergency_120", id="ems-120", phone="120")
DISPATCH = {
    "elder_id": "e-9",
    "address": "幸福里小区3号楼502",
    "location": {"lat": 31.2304, "lon": 121.4737},
    "callback": "13800138000",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def config(url: str, **overrides: object) -> Config:
    values: dict[str, object] = {"url": url, "secret": SECRET, "backoff_s": 0.01, "backoff_max_s": 0.05}
    values.update(overrides)
    return Config.model_validate(values)


def verify(req) -> None:
    timestamp = req.headers["X-Eldercare-Timestamp"]
    mac = hmac.new(SECRET.encode(), timestamp.encode() + b"." + req.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(req.headers["X-Eldercare-Signature"], f"sha256={mac}")


@pytest.mark.anyio
async def test_signed_dispatch_record(receiver, fast, make_notification) -> None:
    receiver.always(200, {"call_id": "call-77", "status": "queued"})
    channel = build(config(receiver.url("/dispatch")), services=fast.services())
    result = await channel.send(make_notification(recipient=AMBULANCE, dispatch=DISPATCH))
    await channel.aclose()

    assert result.ok, result
    assert (result.channel, result.recipient_id, result.attempts) == ("emergency", "ems-120", 1)
    assert result.provider_id == "call-77"
    [req] = receiver.requests
    assert (req.method, req.path) == ("POST", "/dispatch")
    assert req.headers["Content-Type"] == "application/json; charset=utf-8"
    verify(req)
    body = req.json()
    assert body["event"] == "emergency.dispatch"
    assert (body["service"], body["dial"]) == ("120", "120")
    assert body["alert_id"] == 4711
    assert body["read_out_text"].startswith("张阿姨（幸福里小区3号楼502）")
    assert body["dispatch"] == DISPATCH
    assert body["recipient"] == {"kind": "emergency_120", "id": "ems-120"}


@pytest.mark.anyio
async def test_police_service(receiver, fast, make_notification) -> None:
    police = Recipient(kind="emergency_110", id="police-110")
    channel = build(config(receiver.url()), services=fast.services())
    assert (await channel.send(make_notification(recipient=police, dispatch=DISPATCH))).ok
    await channel.aclose()
    body = receiver.requests[0].json()
    assert (body["service"], body["dial"]) == ("110", "110")


@pytest.mark.anyio
async def test_needs_dispatch_record_and_emergency_recipient(receiver, fast, make_notification) -> None:
    channel = build(config(receiver.url()), services=fast.services())
    no_record = await channel.send(make_notification(recipient=AMBULANCE, dispatch=None))
    family = await channel.send(make_notification(dispatch=DISPATCH))
    await channel.aclose()
    assert (no_record.ok, no_record.attempts, no_record.detail) == (False, 1, "no dispatch record")
    assert (family.ok, family.detail) == (False, "recipient kind family not accepted")
    assert receiver.requests == []


@pytest.mark.anyio
async def test_500_then_200_is_retried(receiver, fast, make_notification) -> None:
    receiver.then(500, {})
    channel = build(config(receiver.url()), services=fast.services())
    result = await channel.send(make_notification(recipient=AMBULANCE, dispatch=DISPATCH))
    await channel.aclose()
    assert (result.ok, result.attempts) == (True, 2)
    verify(receiver.requests[1])


@pytest.mark.anyio
async def test_always_500_uses_all_five_attempts(receiver, fast, make_notification) -> None:
    receiver.always(500, {})
    channel = build(config(receiver.url()), services=fast.services())
    result = await channel.send(make_notification(recipient=AMBULANCE, dispatch=DISPATCH))
    await channel.aclose()
    assert (result.ok, result.attempts, result.detail) == (False, 5, "http 500")


@pytest.mark.anyio
async def test_connection_refused(closed_port, fast, make_notification) -> None:
    channel = build(config(f"http://127.0.0.1:{closed_port}/dispatch"), services=fast.services())
    result = await channel.send(make_notification(recipient=AMBULANCE, dispatch=DISPATCH))
    await channel.aclose()
    assert (result.ok, result.attempts, result.detail) == (False, 5, "ConnectError")


@pytest.mark.anyio
async def test_slow_gateway_times_out(receiver, make_notification) -> None:
    receiver.always(delay=5)
    channel = build(config(receiver.url(), timeout_s=0.2, max_attempts=2))
    started = time.monotonic()
    result = await channel.send(make_notification(recipient=AMBULANCE, dispatch=DISPATCH))
    await channel.aclose()
    assert not result.ok
    assert result.detail.startswith("timeout")
    assert time.monotonic() - started < 1.5


def test_secret_is_required() -> None:
    with pytest.raises(ConfigError, match=r"'emergency' config: field 'secret': Field required"):
        parse_channel_config({"type": "emergency", "url": "https://gw.example.org/dispatch"}, load_channels())
    with pytest.raises(ConfigError, match=r"field 'accepted_kinds'.*unknown recipient kinds \['ambulance'\]"):
        parse_channel_config(
            {
                "type": "emergency",
                "url": "https://gw.example.org/dispatch",
                "secret": SECRET,
                "accepted_kinds": ["ambulance"],
            },
            load_channels(),
        )
