"""DingTalk custom robot channel against a real loopback HTTP receiver standing in for oapi.dingtalk.com."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import quote

import pytest

from alerts.channels import load_channels, parse_channel_config
from alerts.channels.dingtalk import Config, build
from hub.errors import ConfigError
from tests.alerts.channels.conftest import LINKS

TOKEN = "0123456789abcdef0123456789abcdef"
SECRET = "SEC0123456789abcdef0123456789abcdef+/="


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def config(receiver_url: str, **overrides: object) -> Config:
    values: dict[str, object] = {
        "base_url": receiver_url,
        "access_token": TOKEN,
        "secret": SECRET,
        "backoff_s": 0.01,
        "backoff_max_s": 0.05,
    }
    values.update(overrides)
    return Config.model_validate(values)


def expected_sign(timestamp: str) -> str:
    mac = hmac.new(SECRET.encode(), f"{timestamp}\n{SECRET}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


@pytest.mark.anyio
async def test_signed_markdown_message(receiver, fast, make_notification) -> None:
    channel = build(config(receiver.url("/robot/send")), services=fast.services())
    result = await channel.send(make_notification())
    await channel.aclose()

    assert result.ok, result
    assert (result.channel, result.attempts) == ("dingtalk", 1)
    [req] = receiver.requests
    assert (req.method, req.path) == ("POST", "/robot/send")
    assert set(req.query) == {"access_token", "timestamp", "sign"}
    assert req.query["access_token"] == TOKEN
    assert req.query["timestamp"] == "1750000000123"  # milliseconds
    assert hmac.compare_digest(req.query["sign"], expected_sign("1750000000123"))
    # The base64 sign travels URL-encoded exactly once.
    assert f"sign={quote(expected_sign('1750000000123'), safe='')}" in req.raw_query
    body = req.json()
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "紧急求助：张阿姨按下了SOS"
    assert "幸福里小区3号楼502" in body["markdown"]["text"]
    assert body["markdown"]["text"].endswith("@13800138000")
    assert body["at"] == {"atMobiles": ["13800138000"], "isAtAll": False}


@pytest.mark.anyio
async def test_real_clock_sign_is_fresh(receiver, make_notification) -> None:
    channel = build(config(receiver.url()))
    before = int(time.time() * 1000)
    assert (await channel.send(make_notification())).ok
    await channel.aclose()
    query = receiver.requests[0].query
    assert before <= int(query["timestamp"]) <= int(time.time() * 1000)
    assert query["sign"] == expected_sign(query["timestamp"])


@pytest.mark.anyio
async def test_unsigned_text_message_with_keyword(receiver, fast, make_notification) -> None:
    channel = build(
        config(receiver.url(), secret=None, msgtype="text", keyword="告警"), services=fast.services()
    )
    result = await channel.send(make_notification())
    await channel.aclose()
    assert result.ok
    req = receiver.requests[0]
    assert req.query == {"access_token": TOKEN}
    body = req.json()
    assert body["msgtype"] == "text"
    assert set(body) == {"msgtype", "text", "at"}
    assert body["text"]["content"].startswith("【告警 紧急求助：张阿姨按下了SOS】")
    assert body["at"]["atMobiles"] == ["13800138000"]


@pytest.mark.anyio
async def test_sign_errcode_is_final(receiver, fast, make_notification) -> None:
    receiver.always(200, {"errcode": 310000, "errmsg": "sign not match"})
    channel = build(config(receiver.url()), services=fast.services())
    result = await channel.send(make_notification())
    await channel.aclose()
    assert (result.ok, result.attempts, result.detail) == (False, 1, "errcode 310000")


@pytest.mark.anyio
async def test_rate_limit_errcode_is_retried(receiver, fast, make_notification) -> None:
    receiver.then(200, {"errcode": 130101, "errmsg": "send too fast"})
    channel = build(config(receiver.url()), services=fast.services())
    result = await channel.send(make_notification())
    await channel.aclose()
    assert (result.ok, result.attempts) == (True, 2)


@pytest.mark.anyio
async def test_500_then_200_is_retried(receiver, fast, make_notification) -> None:
    receiver.then(500, {})
    channel = build(config(receiver.url()), services=fast.services())
    result = await channel.send(make_notification())
    await channel.aclose()
    assert (result.ok, result.attempts) == (True, 2)
    _, second = receiver.requests
    assert second.query["sign"] == expected_sign(second.query["timestamp"])


@pytest.mark.anyio
async def test_always_500_fails(receiver, fast, make_notification) -> None:
    receiver.always(500, {})
    channel = build(config(receiver.url()), services=fast.services())
    result = await channel.send(make_notification())
    await channel.aclose()
    assert (result.ok, result.attempts, result.detail) == (False, 3, "http 500")


@pytest.mark.anyio
async def test_connection_refused(closed_port, fast, make_notification) -> None:
    channel = build(config(f"http://127.0.0.1:{closed_port}/robot/send"), services=fast.services())
    result = await channel.send(make_notification())
    await channel.aclose()
    assert (result.ok, result.attempts, result.detail) == (False, 3, "ConnectError")


@pytest.mark.anyio
async def test_slow_receiver_times_out(receiver, make_notification) -> None:
    receiver.always(delay=5)
    channel = build(config(receiver.url(), timeout_s=0.2, max_attempts=2))
    started = time.monotonic()
    result = await channel.send(make_notification())
    await channel.aclose()
    assert not result.ok
    assert result.detail.startswith("timeout")
    assert time.monotonic() - started < 1.5


def test_token_must_not_be_a_url() -> None:
    with pytest.raises(ConfigError, match=r"'dingtalk'.*field 'access_token'"):
        parse_channel_config(
            {"type": "dingtalk", "access_token": "https://oapi.dingtalk.com/robot/send?access_token=x"},
            load_channels(),
        )


def test_default_endpoint_is_dingtalk() -> None:
    assert Config(access_token=TOKEN).base_url == "https://oapi.dingtalk.com/robot/send"


@pytest.mark.anyio
async def test_action_links_are_in_the_message(receiver, fast, make_notification) -> None:
    channel = build(config(receiver.url("/robot/send")), services=fast.services())
    assert (await channel.send(make_notification(actions=LINKS))).ok
    await channel.aclose()
    text = receiver.requests[0].json()["markdown"]["text"]
    assert f"[收到 / Seen]({LINKS['seen']})" in text and f"[我去处理 / On my way]({LINKS['coming']})" in text
    assert text.endswith("@13800138000")  # the mention stays last, where DingTalk looks for it
