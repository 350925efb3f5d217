"""Console channel: one log line per notification, ids only."""

from __future__ import annotations

import logging

import pytest

from alerts.channels.console import Config, build


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_logs_ids_only(fast, make_notification, caplog) -> None:
    caplog.set_level(logging.INFO, logger="alerts.channels")
    channel = build(Config(level="info"), services=fast.services())
    result = await channel.send(make_notification())
    await channel.aclose()

    assert result.ok
    assert (result.channel, result.recipient_id, result.attempts, result.provider_id) == (
        "console",
        "fam-17",
        1,
        None,
    )
    [line] = [r for r in caplog.records if r.name == "alerts.channels.console"]
    assert line.levelno == logging.INFO
    message = line.getMessage()
    for expected in (
        "alert_id=4711",
        "type=sos",
        "severity=critical",
        "recipient_kind=family",
        "recipient_id=fam-17",
    ):
        assert expected in message
    for personal in ("王小红", "13800138000", "daughter@example.org", "张阿姨", "幸福里", "紧急求助"):
        assert personal not in caplog.text


@pytest.mark.anyio
async def test_instance_name_is_recorded(fast, make_notification) -> None:
    channel = build(Config(name="ops-console"), services=fast.services())
    assert (await channel.send(make_notification())).channel == "ops-console"
