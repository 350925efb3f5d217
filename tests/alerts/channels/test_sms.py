"""SMS gateway channel against a real loopback HTTP receiver standing in for the gateway."""

from __future__ import annotations

import time

import pytest

from alerts.channels import load_channels, parse_channel_config
from alerts.channels.base import Recipient
from alerts.channels.sms import Config, build
from hub.errors import ConfigError
from tests.alerts.channels.conftest import LINKS


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def config(url: str, **overrides: object) -> Config:
    values: dict[str, object] = {
        "url": url,
        "body_template": {
            "to": ["{phone}"],
            "content": {"text": "{text}", "ref": "alert-{alert_id}"},
            "sign": "颐养",
        },
        "query_template": {"recipient": "{recipient_id}"},
        "auth_header": "X-Gateway-Key",
        "auth_value": "gw-key-123",
        "backoff_s": 0.01,
        "backoff_max_s": 0.05,
    }
    values.update(overrides)
    return Config.model_validate(values)


@pytest.mark.anyio
async def test_templated_request_and_success_field(receiver, fast, make_notification) -> None:
    receiver.always(200, {"result": {"code": "OK"}, "data": {"msg_id": 981}})
    cfg = config(
        receiver.url("/v1/sms"),
        success_field="result.code",
        success_value="OK",
        provider_id_field="data.msg_id",
        text_prefix="【颐养】",
    )
    channel = build(cfg, services=fast.services())
    result = await channel.send(make_notification(text="张阿姨按下SOS {not a placeholder}"))
    await channel.aclose()

    assert result.ok, result
    assert (result.channel, result.attempts, result.provider_id) == ("sms", 1, "981")
    [req] = receiver.requests
    assert (req.method, req.path) == ("POST", "/v1/sms")
    assert req.query == {"recipient": "fam-17"}
    assert req.headers["X-Gateway-Key"] == "gw-key-123"
    assert req.json() == {
        "to": ["13800138000"],
        "content": {"text": "【颐养】张阿姨按下SOS {not a placeholder}", "ref": "alert-4711"},
        "sign": "颐养",
    }


@pytest.mark.anyio
async def test_put_and_long_text_is_cut(receiver, fast, make_notification) -> None:
    channel = build(
        config(receiver.url(), method="PUT", query_template={}, max_text_chars=70), services=fast.services()
    )
    result = await channel.send(make_notification(text="长" * 200))
    await channel.aclose()
    assert result.ok
    req = receiver.requests[0]
    assert req.method == "PUT"
    assert len(req.json()["content"]["text"]) == 70


@pytest.mark.anyio
async def test_success_field_mismatch_is_final(receiver, fast, make_notification) -> None:
    receiver.always(200, {"result": {"code": "NO_BALANCE"}})
    channel = build(
        config(receiver.url(), success_field="result.code", success_value="OK"), services=fast.services()
    )
    result = await channel.send(make_notification())
    await channel.aclose()
    assert (result.ok, result.attempts, result.detail) == (False, 1, "gateway result.code=NO_BALANCE")


@pytest.mark.anyio
async def test_success_value_is_compared_exactly(receiver, fast, make_notification) -> None:
    receiver.always(200, {"code": "0"})
    channel = build(config(receiver.url(), success_field="code", success_value=0), services=fast.services())
    result = await channel.send(make_notification())
    await channel.aclose()
    assert not result.ok


@pytest.mark.anyio
async def test_status_outside_success_list(receiver, fast, make_notification) -> None:
    receiver.always(202, {})
    channel = build(config(receiver.url(), success_statuses=[200]), services=fast.services())
    result = await channel.send(make_notification())
    await channel.aclose()
    assert (result.ok, result.attempts, result.detail) == (False, 1, "http 202")


@pytest.mark.anyio
async def test_recipient_without_phone_sends_nothing(receiver, fast, make_notification) -> None:
    channel = build(config(receiver.url()), services=fast.services())
    result = await channel.send(make_notification(recipient=Recipient(kind="operator", id="op-1")))
    await channel.aclose()
    assert (result.ok, result.attempts, result.detail) == (False, 1, "recipient has no phone")
    assert receiver.requests == []


@pytest.mark.anyio
async def test_500_then_200_is_retried(receiver, fast, make_notification) -> None:
    receiver.then(500, {})
    channel = build(config(receiver.url()), services=fast.services())
    result = await channel.send(make_notification())
    await channel.aclose()
    assert (result.ok, result.attempts) == (True, 2)


@pytest.mark.anyio
async def test_always_500_fails(receiver, fast, make_notification) -> None:
    receiver.always(500, {})
    channel = build(config(receiver.url(), max_attempts=2), services=fast.services())
    result = await channel.send(make_notification())
    await channel.aclose()
    assert (result.ok, result.attempts, result.detail) == (False, 2, "http 500")


@pytest.mark.anyio
async def test_connection_refused(closed_port, fast, make_notification) -> None:
    channel = build(config(f"http://127.0.0.1:{closed_port}/sms"), services=fast.services())
    result = await channel.send(make_notification())
    await channel.aclose()
    assert (result.ok, result.attempts, result.detail) == (False, 3, "ConnectError")


@pytest.mark.anyio
async def test_slow_gateway_times_out(receiver, make_notification) -> None:
    receiver.always(delay=5)
    channel = build(config(receiver.url(), timeout_s=0.2, max_attempts=2))
    started = time.monotonic()
    result = await channel.send(make_notification())
    await channel.aclose()
    assert not result.ok
    assert result.detail.startswith("timeout")
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"body_template": {"to": "{phone}", "msg": "{txt}"}}, r"unknown placeholders \['txt'\]"),
        ({"body_template": {"to": "{phone}"}}, r"templates never use \['text'\]"),
        ({"success_field": "code"}, "success_field and success_value must be set together"),
        ({"success_statuses": [200, 999]}, r"field 'success_statuses'.*999"),
        ({"method": "DELETE"}, r"field 'method'"),
    ],
)
def test_config_errors(overrides: dict[str, object], message: str) -> None:
    data: dict[str, object] = {"type": "sms", "name": "sms-gw", "url": "https://sms.example.org/send"}
    data.update(overrides)
    with pytest.raises(ConfigError, match=r"'sms-gw' config: .*" + message):
        parse_channel_config(data, load_channels())


@pytest.mark.anyio
async def test_action_links_follow_the_text_and_are_never_cut(receiver, fast, make_notification) -> None:
    channel = build(config(receiver.url("/v1/sms"), max_text_chars=300), services=fast.services())
    result = await channel.send(make_notification(text="很长的消息" * 100, actions=LINKS))
    await channel.aclose()
    assert result.ok, result
    text = receiver.requests[0].json()["content"]["text"]
    head, *lines = text.split("\n")
    assert lines == [f"收到 / Seen: {LINKS['seen']}", f"我去处理 / On my way: {LINKS['coming']}",
                     f"详情 / Details: {LINKS['page']}"]
    assert head.endswith("…") and len(head) > 10 and len(text) <= 300
