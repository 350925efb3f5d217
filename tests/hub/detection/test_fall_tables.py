"""Tests for the candidate tables behind the fall evaluation (synthetic trials, no dataset needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hub.detection.fall_tables import build, naive_alarm_count, prepared, table
from hub.detection.falls import detect_falls
from hub.detection.wrist_data import WristTrial

HZ = 50.0


def _trial(impact_at: float | None, seconds: float = 20.0, fall: bool = True) -> WristTrial:
    t = 1000.0 + np.arange(0, seconds, 1 / HZ)
    acc = np.tile([0.0, -0.95, 0.3], (len(t), 1)) + np.random.default_rng(0).normal(0, 0.01, (len(t), 3))
    if impact_at is not None:
        hit = (t - t[0] >= impact_at) & (t - t[0] < impact_at + 0.08)
        acc[hit] = [4.0, -3.0, 2.0]
        acc[t - t[0] >= impact_at + 0.08] = [0.95, 0.1, -0.2]
    return WristTrial("test", "S1", "x", fall, t, acc)


def test_naive_rule_counts_one_alarm_per_refractory_period() -> None:
    t = np.arange(0, 30, 0.1)
    acc = np.zeros((len(t), 3))
    acc[[10, 20, 150, 290], 2] = [3.5, 4.0, 3.1, 2.9]  # 1 s, 2 s (same alarm), 15 s, 29 s (under 3 g)
    assert naive_alarm_count(t, acc) == 2
    acc[200, 0] = -105.0  # a glitch is not an alarm
    assert naive_alarm_count(t, acc) == 2


def test_tables_hold_the_candidates_the_detector_judges(tmp_path: Path) -> None:
    trials = [_trial(10.0), _trial(18.5), _trial(None, fall=False)]
    tab = build(trials, None, "recorded")
    assert tab.fall.tolist() == [True, True, False]
    assert sorted(set(tab.trial.tolist())) == [0, 1]
    for i, tr in enumerate(trials[:2]):
        times = tab.time[tab.trial == i]
        found = detect_falls(*prepared(tr, None, "recorded"))
        assert all(any(abs(f - x) < 1e-9 for x in times) for f in found)
    assert tab.peak[2] < 1.2 < tab.peak[0]
    assert np.allclose(tab.hours, 20.0 / 3600, atol=1e-3)
    again = table(trials, "test", None, "recorded", tmp_path)
    cached = table(trials, "test", None, "recorded", tmp_path)
    assert np.array_equal(again.x, tab.x) and np.array_equal(cached.x, tab.x)


def test_continued_protocol_is_longer_and_25_hz_is_averaged() -> None:
    tr = _trial(18.5)
    t, _ = prepared(tr, None, "continued")
    assert t[-1] - tr.t[-1] > 9.9
    t25, _ = prepared(tr, 25.0, "recorded")
    assert abs(np.median(np.diff(t25)) - 0.04) < 1e-9
