"""Tests for the per-wristband fall detection of the live hub, impacts followed by silence included."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest

from alerts.model import Binding
from devices.observation import ImuBatch, Observation
from hub.detection.wrist import WristFalls
from simulators.native import message

HZ = 50
UP = np.array([0.15, -0.95, 0.27]) / np.linalg.norm([0.15, -0.95, 0.27])
SIDE = np.array([0.9, 0.1, -0.42]) / np.linalg.norm([0.9, 0.1, -0.42])


def fall_then_silence(seconds_after: float) -> np.ndarray:
    """10 s of walking, a free fall and a 6 g impact, lying still on the side; the band stops after."""
    t = np.arange(0, 10 + seconds_after, 1 / HZ)
    swing = np.radians(15 * np.sin(2 * np.pi * 0.9 * t))[:, None]
    a = UP * np.cos(swing) + np.cross([0.0, 0.0, 1.0], UP) * np.sin(swing)
    a += 0.3 * np.sin(2 * np.pi * 1.8 * t)[:, None] * UP
    a[(t >= 9.55) & (t < 9.96)] = 0.15 * UP
    a[(t >= 9.96) & (t < 10.06)] = 6.0 * (UP + SIDE) / np.linalg.norm(UP + SIDE)
    a[t >= 10.06] = SIDE
    return a + np.random.default_rng(0).normal(0, 0.01, a.shape)


def _binding() -> Binding:
    return Binding("W1", "wristband", "R1", "H1", "sz.futian", None)


def _batches(acc: np.ndarray, start: float) -> list[Observation]:
    return [Observation("W1", "imu", datetime.fromtimestamp(start + k / HZ, UTC), f"imu-{k}",
                        imu=ImuBatch(HZ, acc[k : k + HZ].astype(np.float32))) for k in range(0, len(acc), HZ)]


def test_a_fall_followed_by_silence_is_judged_when_the_pause_is_noticed() -> None:
    wrist = WristFalls(pause_s=5.0)
    start = 1_795_400_000.0
    found = [tr for obs in _batches(fall_then_silence(2.0), start) for tr in wrist.observe(obs, _binding())]
    assert found == []  # 2 s after the impact: the full 7 s aftermath never came
    assert wrist.sweep(time.monotonic() + 1.0) == []  # not paused long enough yet
    triggers = wrist.sweep(time.monotonic() + 5.0)
    assert [t.type for t in triggers] == ["fall"]
    assert abs(triggers[0].ts.timestamp() - (start + 10.0)) < 0.5
    assert triggers[0].source_device == "W1"
    assert wrist.sweep(time.monotonic() + 60.0) == []  # judged once


def test_a_stream_that_goes_on_is_not_cut_by_the_sweep() -> None:
    wrist = WristFalls(pause_s=5.0)
    start = 1_795_400_000.0
    found = []
    for obs in _batches(fall_then_silence(9.0), start):
        found += wrist.observe(obs, _binding())
        found += wrist.sweep()  # batches keep coming: never a pause
    assert [t.type for t in found] == ["fall"]
    assert wrist.sweep(time.monotonic() + 60.0) == []  # already raised, not again


@pytest.mark.anyio
async def test_a_fall_then_silence_raises_the_alarm_through_the_hub(running_hub, world, devices, settings) -> None:
    await world.resident("R1")
    client = await devices.connect("W1", await world.device("W1", "wristband", "R1"))
    acc = fall_then_silence(2.0)
    start = time.time() - len(acc) / HZ
    try:
        for k in range(0, len(acc), HZ):
            milli = np.rint(acc[k : k + HZ] * 1000).astype(int)
            body = {"rate_hz": HZ, "scale": 0.001, "x": milli[:, 0].tolist(), "y": milli[:, 1].tolist(),
                    "z": milli[:, 2].tolist()}
            await client.publish(world.topic("wristband", "W1", "imu"), message(body, ts=start + k / HZ), qos=1)
    finally:
        await client.__aexit__(None, None, None)
    # Nothing follows the last batch: the hub must notice the pause (5 s) and judge the impact.
    deadline = time.monotonic() + 30
    rows: list[tuple[str, str]] = []
    async with await psycopg.AsyncConnection.connect(settings.db_url, autocommit=True) as conn:
        while time.monotonic() < deadline and not rows:
            rows = await (await conn.execute(
                "SELECT type, resident_id FROM alerts WHERE type = 'fall'")).fetchall()
            await asyncio.sleep(0.2)
    assert rows == [("fall", "R1")]
