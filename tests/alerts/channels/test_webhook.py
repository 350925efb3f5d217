"""Generic webhook channel against a real loopback HTTP receiver."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

import httpx
import pytest

from alerts.channels import load_channels, parse_channel_config
from alerts.channels.base import Recipient
from alerts.channels.webhook import Config, build
from hub.errors import ConfigError
from tests.alerts.channels.conftest import LINKS

SECRET = "s3cret-for-tests-0123456789"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def expected_signature(timestamp: str, body: bytes) -> str:
    mac = hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def config(url: str, **overrides: object) -> Config:
    values: dict[str, object] = {"url": url, "secret": SECRET, "backoff_s": 0.01, "backoff_max_s": 0.05}
    values.update(overrides)
    return Config.model_validate(values)


@pytest.mark.anyio
async def test_signed_json_post(receiver, fast, make_notification) -> None:
    receiver.then(body={"id": "msg-1"})
    channel = build(config(receiver.url("/family"), headers={"X-Api-Token": "t1"}), services=fast.services())
    result = await channel.send(make_notification(dispatch=None, extra={"elder_id": "e-9"}))
    await channel.aclose()

    assert result.ok, result
    assert (result.channel, result.recipient_id, result.attempts) == ("webhook", "fam-17", 1)
    assert result.provider_id == "msg-1"
    assert result.latency_ms >= 0
    [req] = receiver.requests
    assert (req.method, req.path) == ("POST", "/family")
    assert req.headers["Content-Type"] == "application/json; charset=utf-8"
    assert req.headers["X-Api-Token"] == "t1"
    timestamp = req.headers["X-Eldercare-Timestamp"]
    assert timestamp == str(int(1_750_000_000.123))
    assert hmac.compare_digest(req.headers["X-Eldercare-Signature"], expected_signature(timestamp, req.body))
    assert req.headers["X-Eldercare-Delivery"].startswith("a4711-s1-n1-")
    body = req.json()
    assert body["event"] == "alert.notification"
    assert body["alert_id"] == 4711
    assert body["alert_type"] == "sos"
    assert body["severity"] == "critical"
    assert body["text"].startswith("张阿姨")
    assert "张阿姨" in req.body.decode("utf-8")  # UTF-8 on the wire, not \\u escapes
    assert body["recipient"] == {
        "kind": "family",
        "id": "fam-17",
        "name": "王小红",
        "phone": "13800138000",
        "email": "daughter@example.org",
    }
    assert body["created_at"] == "2025-06-15T08:15:00+00:00"
    assert body["extra"] == {"elder_id": "e-9"}


@pytest.mark.anyio
async def test_unsigned_when_no_secret(receiver, fast, make_notification) -> None:
    channel = build(config(receiver.url(), secret=None), services=fast.services())
    result = await channel.send(make_notification())
    await channel.aclose()
    assert result.ok
    headers = receiver.requests[0].headers
    assert "X-Eldercare-Signature" not in headers
    assert "X-Eldercare-Timestamp" not in headers


@pytest.mark.anyio
async def test_recipient_address_overrides_url(receiver, fast, make_notification) -> None:
    channel = build(config(receiver.url("/default"), use_recipient_address=True), services=fast.services())
    recipient = Recipient(kind="community_worker", id="cw-3", address=receiver.url("/worker-app"))
    result = await channel.send(make_notification(recipient=recipient))
    bad = await channel.send(make_notification(recipient=Recipient(kind="family", id="f", address="nope")))
    await channel.aclose()
    assert result.ok
    assert [r.path for r in receiver.requests] == ["/worker-app"]
    assert (bad.ok, bad.attempts, bad.detail) == (False, 1, "bad recipient address")


@pytest.mark.anyio
async def test_500_then_200_is_retried(receiver, fast, make_notification) -> None:
    receiver.then(500, {}).then(200, {})
    channel = build(config(receiver.url()), services=fast.services())
    result = await channel.send(make_notification())
    await channel.aclose()
    assert result.ok
    assert result.attempts == 2
    assert len(fast.sleeps) == 1
    first, second = receiver.requests
    # Each attempt is signed afresh over the same body.
    assert first.body == second.body
    assert hmac.compare_digest(
        second.headers["X-Eldercare-Signature"],
        expected_signature(second.headers["X-Eldercare-Timestamp"], second.body),
    )


@pytest.mark.anyio
async def test_always_500_gives_up_after_max_attempts(receiver, fast, make_notification) -> None:
    receiver.always(503, {})
    channel = build(config(receiver.url(), max_attempts=4), services=fast.services())
    result = await channel.send(make_notification())
    await channel.aclose()
    assert not result.ok
    assert (result.attempts, result.detail) == (4, "http 503")
    assert len(receiver.requests) == 4
    assert len(fast.sleeps) == 3
    assert fast.sleeps == sorted(fast.sleeps)  # exponential growth
    assert max(fast.sleeps) <= 0.05


@pytest.mark.anyio
async def test_client_error_is_not_retried(receiver, fast, make_notification) -> None:
    receiver.always(404, {})
    channel = build(config(receiver.url()), services=fast.services())
    result = await channel.send(make_notification())
    await channel.aclose()
    assert (result.ok, result.attempts, result.detail) == (False, 1, "http 404")


@pytest.mark.anyio
async def test_connection_refused(closed_port, fast, make_notification) -> None:
    channel = build(config(f"http://127.0.0.1:{closed_port}/hook", max_attempts=2), services=fast.services())
    started = time.monotonic()
    result = await channel.send(make_notification())
    await channel.aclose()
    assert not result.ok
    assert (result.attempts, result.detail) == (2, "ConnectError")
    assert time.monotonic() - started < 2


@pytest.mark.anyio
async def test_slow_receiver_times_out(receiver, make_notification) -> None:
    receiver.always(delay=5)
    channel = build(config(receiver.url(), timeout_s=0.2, max_attempts=2))  # real sleeps, small backoff
    started = time.monotonic()
    result = await channel.send(make_notification())
    await channel.aclose()
    elapsed = time.monotonic() - started
    assert not result.ok
    assert result.detail.startswith("timeout")
    assert result.attempts == 2
    assert elapsed < 1.5
    assert result.latency_ms == pytest.approx(elapsed * 1000, abs=100)


@pytest.mark.anyio
async def test_deadline_bounds_the_retries(receiver, make_notification) -> None:
    receiver.always(delay=5)
    cfg = config(
        receiver.url(), timeout_s=0.2, deadline_s=0.5, max_attempts=10, backoff_s=0.1, backoff_max_s=0.2
    )
    channel = build(cfg)
    started = time.monotonic()
    result = await channel.send(make_notification())
    await channel.aclose()
    assert not result.ok
    assert result.attempts < 10
    assert "deadline" in result.detail or result.detail.startswith("timeout")
    assert time.monotonic() - started < 0.9


@pytest.mark.anyio
async def test_shared_client_is_left_open(receiver, fast, make_notification) -> None:
    async with httpx.AsyncClient() as client:
        channel = build(config(receiver.url()), http_client=client, services=fast.services())
        assert (await channel.send(make_notification())).ok
        await channel.aclose()
        assert not client.is_closed


@pytest.mark.anyio
async def test_logs_hold_ids_only(receiver, fast, make_notification, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="alerts.channels")
    receiver.then(500, {})
    channel = build(config(receiver.url()), services=fast.services())
    await channel.send(make_notification())
    await channel.aclose()
    text = caplog.text
    assert "alert_id=4711" in text
    assert "recipient_id=fam-17" in text
    for personal in ("王小红", "13800138000", "daughter@example.org", "张阿姨", "幸福里"):
        assert personal not in text


def test_config_errors_name_channel_and_field() -> None:
    registry = load_channels()
    with pytest.raises(ConfigError, match=r"'webhook'.*field 'url'"):
        parse_channel_config({"type": "webhook", "url": "ftp://example.org/x"}, registry)
    with pytest.raises(ConfigError, match=r"'family-app'.*field 'secret'"):
        parse_channel_config(
            {"type": "webhook", "name": "family-app", "url": "http://x/", "secret": "short"}, registry
        )
    with pytest.raises(ConfigError, match=r"field 'headers'.*X-Eldercare-Signature"):
        parse_channel_config(
            {"type": "webhook", "url": "http://x/", "headers": {"X-Eldercare-Signature": "x"}}, registry
        )
    with pytest.raises(ConfigError, match="deadline_s must be at least timeout_s"):
        parse_channel_config(
            {"type": "webhook", "url": "http://x/", "timeout_s": 10, "deadline_s": 5}, registry
        )


@pytest.mark.anyio
async def test_action_links_are_in_the_payload(receiver, fast, make_notification) -> None:
    channel = build(config(receiver.url("/hook")), services=fast.services())
    assert (await channel.send(make_notification(actions=LINKS))).ok
    assert (await channel.send(make_notification())).ok
    await channel.aclose()
    assert receiver.requests[0].json()["actions"] == LINKS
    assert receiver.requests[1].json()["actions"] is None
