"""The shared retry loop, backoff, deadline and helpers in alerts/channels/base.py."""

from __future__ import annotations

import time
from typing import Literal

import anyio
import pytest
from pydantic import Field

from alerts.channels.base import (
    ChannelConfigBase,
    ChannelServices,
    DeliveryError,
    Notification,
    RetryingChannel,
    dig,
    truncate_utf8,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class ProbeConfig(ChannelConfigBase):
    type: Literal["probe"] = Field("probe", title="Type", description="Test channel.")


class Probe(RetryingChannel[ProbeConfig]):
    """A channel whose attempts follow a script of outcomes."""

    key = "probe"

    def __init__(self, config: ProbeConfig, outcomes: list[object], services: ChannelServices) -> None:
        super().__init__(config, services=services)
        self.outcomes = outcomes
        self.calls = 0

    async def _deliver(self, notification: Notification) -> str | None:
        self.calls += 1
        outcome = self.outcomes.pop(0) if self.outcomes else self.outcomes_default
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome == "hang":
            await anyio.sleep(60)
        return str(outcome)

    outcomes_default: object = DeliveryError("http 500", retryable=True)


class FakeTime:
    """A clock that only moves when the channel sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def services(self, jitter: float = 1.0) -> ChannelServices:
        return ChannelServices(sleep=self.sleep, clock=lambda: self.now, jitter=lambda: jitter)


@pytest.mark.parametrize(("jitter", "expected"), [(0.0, [0.5, 1.0, 2.0, 2.5, 2.5]), (1.0, [1, 2, 4, 5, 5])])
def test_backoff_doubles_with_jitter_and_cap(jitter: float, expected: list[float]) -> None:
    channel = Probe(ProbeConfig(backoff_s=1, backoff_max_s=5), [], FakeTime().services(jitter))
    assert [channel.backoff_delay(n) for n in range(1, 6)] == expected


@pytest.mark.anyio
async def test_succeeds_after_retries_with_growing_waits(make_notification) -> None:
    fake = FakeTime()
    failure = DeliveryError("http 502", retryable=True)
    channel = Probe(
        ProbeConfig(max_attempts=5, backoff_s=1, backoff_max_s=30),
        [failure, failure, "id-9"],
        fake.services(),
    )
    result = await channel.send(make_notification())
    assert (result.ok, result.attempts, result.provider_id, result.detail) == (True, 3, "id-9", "delivered")
    assert fake.sleeps == [1, 2]
    assert result.latency_ms == 3000


@pytest.mark.anyio
async def test_final_error_is_not_retried(make_notification) -> None:
    fake = FakeTime()
    channel = Probe(ProbeConfig(), [DeliveryError("errcode 93000", retryable=False)], fake.services())
    result = await channel.send(make_notification())
    assert (result.ok, result.attempts, result.detail) == (False, 1, "errcode 93000")
    assert fake.sleeps == []


@pytest.mark.anyio
async def test_deadline_stops_before_a_wait_that_would_cross_it(make_notification) -> None:
    fake = FakeTime()
    cfg = ProbeConfig(max_attempts=10, backoff_s=1, backoff_max_s=60, timeout_s=1, deadline_s=3)
    channel = Probe(cfg, [], fake.services())
    result = await channel.send(make_notification())
    assert (result.ok, result.attempts, result.detail) == (False, 2, "http 500; deadline reached")
    assert fake.sleeps == [1]


@pytest.mark.anyio
async def test_a_channel_bug_becomes_a_failed_result(make_notification) -> None:
    channel = Probe(ProbeConfig(), [RuntimeError("boom with 王小红's phone")], FakeTime().services())
    result = await channel.send(make_notification())
    assert (result.ok, result.attempts, result.detail) == (False, 1, "error RuntimeError")


@pytest.mark.anyio
async def test_attempt_timeout_is_enforced_around_deliver(make_notification) -> None:
    channel = Probe(
        ProbeConfig(timeout_s=0.1, max_attempts=2, backoff_s=0.01, backoff_max_s=0.01),
        ["hang", "hang"],
        ChannelServices(),
    )
    started = time.monotonic()
    result = await channel.send(make_notification())
    assert (result.ok, result.attempts, result.detail) == (False, 2, "timeout")
    assert time.monotonic() - started < 1


@pytest.mark.anyio
async def test_cancellation_is_not_swallowed(make_notification) -> None:
    channel = Probe(ProbeConfig(timeout_s=5), ["hang"], ChannelServices())
    with anyio.move_on_after(0.05) as scope:
        await channel.send(make_notification())
    assert scope.cancelled_caught


def test_truncate_utf8_never_splits_a_character() -> None:
    assert truncate_utf8("abc", 10) == "abc"
    cut = truncate_utf8("张阿姨跌倒了", 10)
    assert cut == "张阿…"
    assert len(cut.encode()) <= 10


def test_dig() -> None:
    body = {"result": {"code": 0, "items": [{"id": "x"}]}}
    assert dig(body, "result.code") == 0
    assert dig(body, "result.items.0.id") == "x"
    assert dig(body, "result.missing") is None
    assert dig("not json object", "a") is None


def test_limits_must_be_consistent() -> None:
    with pytest.raises(ValueError, match="backoff_max_s must be at least backoff_s"):
        ProbeConfig(backoff_s=5, backoff_max_s=1)
    with pytest.raises(ValueError, match="extra"):
        ProbeConfig.model_validate({"type": "probe", "retries": 3})
