"""WeCom group robot channel against a real loopback HTTP receiver standing in for qyapi.weixin.qq.com."""

from __future__ import annotations

import time

import pytest

from alerts.channels import load_channels, parse_channel_config
from alerts.channels.base import Recipient
from alerts.channels.wecom import Config, build
from hub.errors import ConfigError
from tests.alerts.channels.conftest import LINKS

ROBOT_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def config(receiver_url: str, **overrides: object) -> Config:
    values: dict[str, object] = {
        "base_url": receiver_url,
        "key": ROBOT_KEY,
        "backoff_s": 0.01,
        "backoff_max_s": 0.05,
    }
    values.update(overrides)
    return Config.model_validate(values)


@pytest.mark.anyio
async def test_markdown_message(receiver, fast, make_notification) -> None:
    channel = build(config(receiver.url("/cgi-bin/webhook/send")), services=fast.services())
    result = await channel.send(make_notification())
    await channel.aclose()

    assert result.ok, result
    assert (result.channel, result.attempts, result.detail) == ("wecom", 1, "delivered")
    [req] = receiver.requests
    assert (req.method, req.path) == ("POST", "/cgi-bin/webhook/send")
    assert req.query == {"key": ROBOT_KEY}
    assert req.headers["Content-Type"].startswith("application/json")
    body = req.json()
    assert set(body) == {"msgtype", "markdown"}
    assert body["msgtype"] == "markdown"
    assert set(body["markdown"]) == {"content"}
    content = body["markdown"]["content"]
    assert "紧急求助：张阿姨按下了SOS" in content
    assert "幸福里小区3号楼502" in content
    assert "告警 #4711" in content
    assert "紧急" in content


@pytest.mark.anyio
async def test_text_message_mentions_recipient_by_mobile(receiver, fast, make_notification) -> None:
    channel = build(config(receiver.url(), msgtype="text"), services=fast.services())
    result = await channel.send(make_notification())
    await channel.aclose()
    assert result.ok
    body = receiver.requests[0].json()
    assert body["msgtype"] == "text"
    assert body["text"]["mentioned_mobile_list"] == ["13800138000"]
    assert body["text"]["content"].startswith("【紧急求助：张阿姨按下了SOS】\n张阿姨")


@pytest.mark.anyio
async def test_recipient_address_selects_robot(receiver, fast, make_notification) -> None:
    channel = build(config(receiver.url()), services=fast.services())
    worker = Recipient(kind="community_worker", id="cw-1", address="11111111-2222-3333-4444-555555555555")
    result = await channel.send(make_notification(recipient=worker))
    await channel.aclose()
    assert result.ok
    assert receiver.requests[0].query["key"] == "11111111-2222-3333-4444-555555555555"


@pytest.mark.anyio
async def test_long_text_fits_wecom_limit(receiver, fast, make_notification) -> None:
    channel = build(config(receiver.url()), services=fast.services())
    result = await channel.send(make_notification(text="跌倒" * 3000))
    await channel.aclose()
    assert result.ok
    content = receiver.requests[0].json()["markdown"]["content"]
    assert len(content.encode("utf-8")) <= 4096
    assert content.endswith("…")


@pytest.mark.anyio
async def test_errcode_is_a_failure(receiver, fast, make_notification) -> None:
    receiver.always(200, {"errcode": 93000, "errmsg": "invalid webhook url"})
    channel = build(config(receiver.url()), services=fast.services())
    result = await channel.send(make_notification())
    await channel.aclose()
    assert (result.ok, result.attempts, result.detail) == (False, 1, "errcode 93000")


@pytest.mark.anyio
async def test_rate_limit_errcode_is_retried(receiver, fast, make_notification) -> None:
    receiver.then(200, {"errcode": 45009, "errmsg": "api freq out of limit"})
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
    assert len(receiver.requests) == 2


@pytest.mark.anyio
async def test_always_500_fails(receiver, fast, make_notification) -> None:
    receiver.always(502, b"<html>bad gateway</html>")
    channel = build(config(receiver.url()), services=fast.services())
    result = await channel.send(make_notification())
    await channel.aclose()
    assert (result.ok, result.attempts, result.detail) == (False, 3, "http 502")


@pytest.mark.anyio
async def test_non_json_200_fails(receiver, fast, make_notification) -> None:
    receiver.always(200, b"<html>captive portal</html>")
    channel = build(config(receiver.url(), max_attempts=2), services=fast.services())
    result = await channel.send(make_notification())
    await channel.aclose()
    assert (result.ok, result.attempts, result.detail) == (False, 2, "http 200 non-json body")


@pytest.mark.anyio
async def test_connection_refused(closed_port, fast, make_notification) -> None:
    channel = build(config(f"http://127.0.0.1:{closed_port}/send"), services=fast.services())
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


def test_key_must_not_be_a_url() -> None:
    with pytest.raises(ConfigError, match=r"'wecom'.*field 'key'"):
        parse_channel_config(
            {"type": "wecom", "key": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc"},
            load_channels(),
        )
    with pytest.raises(ConfigError, match=r"field 'key': Field required"):
        parse_channel_config({"type": "wecom"}, load_channels())


def test_default_endpoint_is_wecom() -> None:
    assert Config(key=ROBOT_KEY).base_url == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"


@pytest.mark.anyio
async def test_action_links_in_markdown_and_text(receiver, fast, make_notification) -> None:
    for msgtype in ("markdown", "text"):
        channel = build(config(receiver.url("/cgi-bin/webhook/send"), msgtype=msgtype), services=fast.services())
        assert (await channel.send(make_notification(text="长" * 3000, actions=LINKS))).ok
        await channel.aclose()
    markdown = receiver.requests[0].json()["markdown"]["content"]
    text = receiver.requests[1].json()["text"]["content"]
    assert markdown.endswith(f"[收到 / Seen]({LINKS['seen']})  ·  [我去处理 / On my way]({LINKS['coming']})"
                             f"  ·  [详情 / Details]({LINKS['page']})")
    assert text.endswith(f"详情 / Details: {LINKS['page']}") and f"收到 / Seen: {LINKS['seen']}" in text
    assert len(text.encode()) <= 2048
