"""Tests for the wrist fall detector on synthetic wrist signals."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest

from hub.detection.falls import (
    FEATURE_NAMES,
    GRID_HZ,
    LOOKBACK_S,
    NMS_S,
    POST_S,
    PRE_S,
    DetectionError,
    FallDetector,
    FallModel,
    InvalidSamplesError,
    detect_falls,
    extract_candidates,
)

Signal = Callable[[np.ndarray], np.ndarray]
UP = np.array([0.15, -0.95, 0.27]) / np.linalg.norm([0.15, -0.95, 0.27])  # arm hanging
SIDE = np.array([0.9, 0.1, -0.42]) / np.linalg.norm([0.9, 0.1, -0.42])  # lying on the forearm
FALL_AT = 20.0


def _rotate(v: np.ndarray, axis: np.ndarray, deg: np.ndarray) -> np.ndarray:
    """Rodrigues rotation of v about axis by deg (array of angles)."""
    k = axis / np.linalg.norm(axis)
    th = np.radians(deg)[:, None]
    return v * np.cos(th) + np.cross(k, v) * np.sin(th) + k * (k @ v) * (1 - np.cos(th))


def walking(t: np.ndarray) -> np.ndarray:
    """Arm swinging at 0.9 Hz with step bounces at 1.8 Hz."""
    g = _rotate(UP, np.array([0.0, 0.0, 1.0]), 15 * np.sin(2 * np.pi * 0.9 * t))
    bounce = 0.3 * np.sin(2 * np.pi * 1.8 * t)[:, None] * UP
    sway = 0.15 * np.sin(2 * np.pi * 0.9 * t + 1)[:, None] * np.array([1.0, 0.0, 0.0])
    return g + bounce + sway


def fall(t: np.ndarray, at: float = FALL_AT) -> np.ndarray:
    """Walking, 0.45 s of near free fall, a hard impact, a short bounce, then lying still on the side."""
    a = walking(t)
    drop = (t >= at - 0.45) & (t < at - 0.04)
    a[drop] = 0.15 * UP
    hit = (t >= at - 0.04) & (t < at + 0.06)
    a[hit] = 6.0 * (UP + SIDE) / np.linalg.norm(UP + SIDE)
    bounce = (t >= at + 0.06) & (t < at + 0.6)
    decay = np.exp(-(t[bounce] - at) * 6) * np.sin(2 * np.pi * 6 * (t[bounce] - at))
    a[bounce] = SIDE + 1.2 * decay[:, None] * UP
    a[t >= at + 0.6] = SIDE
    return a


def table_slam(t: np.ndarray) -> np.ndarray:
    """Walking, one sharp 5 g slap with no change of orientation, then walking on."""
    a = walking(t)
    hit = (t >= FALL_AT - 0.04) & (t < FALL_AT + 0.04)
    a[hit] = 5.0 * UP
    return a


def clapping(t: np.ndarray) -> np.ndarray:
    """Standing; forearms rise, eight seconds of claps (3.5 g spikes twice a second), forearms drop."""
    start, stop = FALL_AT - 4, FALL_AT + 4
    lift = np.clip(np.minimum(t - (start - 1), stop + 1 - t), 0, 1) * 80  # degrees, 1 s to raise or lower
    a = _rotate(UP, np.array([0.0, 0.0, 1.0]), lift)
    playing = (t > start) & (t < stop)
    clap = playing & ((t - start) % 0.5 < 0.05)
    a[clap] += 2.5 * SIDE
    swing = playing & ~clap
    a[swing] += 0.4 * np.sin(2 * np.pi * 2 * (t[swing] - start))[:, None] * SIDE
    return a


def sitting_down_hard(t: np.ndarray) -> np.ndarray:
    """Standing, lowering for 0.8 s, a 1.8 g jolt on the chair, forearms turning 70° onto the thighs."""
    a = np.tile(UP, (len(t), 1))
    a[(t >= FALL_AT - 0.8) & (t < FALL_AT - 0.04)] = 0.8 * UP
    a[(t >= FALL_AT - 0.04) & (t < FALL_AT + 0.04)] = 1.8 * UP
    after = t >= FALL_AT + 0.04
    a[after] = _rotate(UP, np.array([0.0, 0.0, 1.0]), 70 * np.clip((t[after] - FALL_AT) / 0.8, 0, 1))
    a[after] += 0.03 * np.sin(2 * np.pi * 0.3 * t[after])[:, None] * SIDE
    return a


def slump_from_walking(t: np.ndarray) -> np.ndarray:
    """Walking, a 0.26 s dip, a 2.2 g jolt, then motionless with the forearm tilted 20°."""
    a = walking(t)
    a[(t >= FALL_AT - 0.3) & (t < FALL_AT - 0.04)] = 0.7 * UP
    a[(t >= FALL_AT - 0.04) & (t < FALL_AT + 0.04)] = 2.2 * UP
    a[t >= FALL_AT + 0.04] = _rotate(UP, np.array([0.0, 0.0, 1.0]), np.array([20.0]))[0]
    return a


def sample(signal: Signal, hz: float, seconds: float = 40.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Regularly sampled signal with a little sensor noise."""
    t = 1_700_000_000.0 + np.arange(0, seconds, 1 / hz)
    rng = np.random.default_rng(seed)
    return t, signal(t - t[0]) + rng.normal(0, 0.01, (len(t), 3))


def _falls_near(found: list[float], t0: float, at: float = FALL_AT, tol: float = 0.5) -> int:
    return sum(abs(f - t0 - at) <= tol for f in found)


@pytest.mark.parametrize("hz", [10, 20, 25, 50, 100, 238, 250])
def test_clear_fall_is_detected_once_at_the_impact_at_every_rate(hz: float) -> None:
    t, acc = sample(fall, hz)
    found = detect_falls(t, acc)
    assert len(found) == 1
    assert _falls_near(found, t[0]) == 1


@pytest.mark.parametrize("hz", [25, 50, 238])
@pytest.mark.parametrize("signal", [table_slam, clapping, walking, sitting_down_hard])
def test_look_alikes_raise_no_alarm(signal: Signal, hz: float) -> None:
    t, acc = sample(signal, hz)
    assert detect_falls(t, acc) == []


@pytest.mark.xfail(reason="thin margin: a hard drop into a chair looks like a soft fall at the wrist", strict=False)
@pytest.mark.parametrize("hz", [25, 238])
def test_slump_into_a_chair_from_walking_raises_no_alarm(hz: float) -> None:
    t, acc = sample(slump_from_walking, hz)
    assert detect_falls(t, acc) == []


def test_look_alikes_do_produce_impact_candidates() -> None:
    # Otherwise the look-alike tests would pass for the wrong reason.
    for signal in (table_slam, clapping, sitting_down_hard):
        t, acc = sample(signal, 50)
        times, feats = extract_candidates(t, acc)
        assert len(times) >= 1
        assert feats.shape == (len(times), len(FEATURE_NAMES))


@pytest.mark.parametrize("seed", range(5))
def test_streaming_in_random_batches_matches_offline(seed: int) -> None:
    rng = np.random.default_rng(seed)
    hz = float(rng.choice([25, 50, 238]))
    t1, a1 = sample(fall, hz, 40, seed)
    t2, a2 = sample(table_slam, hz, 40, seed + 1)
    t3, a3 = sample(fall, hz, 40, seed + 2)
    t, acc = np.r_[t1, t2 + 40, t3 + 80], np.vstack([a1, a2, a3])
    offline = detect_falls(t, acc)
    assert _falls_near(offline, t[0]) == 1
    assert _falls_near(offline, t[0] + 80) == 1
    detector = FallDetector()
    streamed: list[float] = []
    i = 0
    while i < len(t):
        n = int(rng.integers(1, int(5 * hz)))
        streamed += detector.push(t[i : i + n], acc[i : i + n])
        i += n
    assert streamed + detector.finish() == offline


@pytest.mark.parametrize("seed", range(4))
def test_streaming_that_ends_soon_after_an_impact_matches_offline(seed: int) -> None:
    # The recording stops 1-5 s after the second fall's impact: the end rule judges it either way.
    rng = np.random.default_rng(seed)
    hz = float(rng.choice([20, 25, 50, 238]))
    t1, a1 = sample(fall, hz, 40, seed)
    t2, a2 = sample(fall, hz, FALL_AT + float(rng.uniform(1, 5)), seed + 1)
    t, acc = np.r_[t1, t2 + 40], np.vstack([a1, a2])
    offline = detect_falls(t, acc)
    assert _falls_near(offline, t[0]) == 1
    assert _falls_near(offline, t[0] + 40) == 1
    detector = FallDetector()
    streamed: list[float] = []
    i = 0
    while i < len(t):
        n = int(rng.integers(1, int(3 * hz)))
        streamed += detector.push(t[i : i + n], acc[i : i + n])
        i += n
    assert streamed + detector.finish() == offline


@pytest.mark.parametrize("after_s", [0.5, 1.0, 2.0, 4.0, 6.5])
def test_an_impact_near_the_end_of_a_recording_is_judged(after_s: float) -> None:
    t, acc = sample(fall, 50, FALL_AT + after_s)
    assert _falls_near(detect_falls(t, acc), t[0]) == 1


def test_an_impact_followed_by_a_long_gap_is_judged_before_the_stream_restarts() -> None:
    t, acc = sample(fall, 50, 60)
    gap = (t - t[0] > FALL_AT + 2.0) & (t - t[0] < FALL_AT + 20.0)
    times, _ = extract_candidates(t[~gap], acc[~gap])
    assert any(abs(x - t[0] - FALL_AT) < 0.1 for x in times)
    assert _falls_near(detect_falls(t[~gap], acc[~gap]), t[0]) == 1


def test_a_stopped_stream_is_judged_once_and_later_samples_start_afresh() -> None:
    t, acc = sample(fall, 50, FALL_AT + 2.0)
    detector = FallDetector()
    assert detector.push(t, acc) == []  # the 7 s aftermath has not come
    assert _falls_near(detector.finish(), t[0]) == 1
    assert detector.finish() == []
    t2, a2 = sample(walking, 50, 30, seed=4)
    assert detector.push(t2 + 100, a2) + detector.finish() == []


@pytest.mark.parametrize("after_s", [1.5, 3.0])
def test_the_end_rule_does_not_repeat_the_impact(after_s: float) -> None:
    # Stopping soon after a table slam: the walk goes on in the repeated tail, the slam is not repeated.
    t, acc = sample(table_slam, 50, FALL_AT + after_s)
    times, _ = extract_candidates(t, acc)
    assert len(times) >= 1
    assert detect_falls(t, acc) == []


@pytest.mark.parametrize("hz", [20, 50])
def test_a_one_sample_glitch_beyond_any_range_is_dropped(hz: float) -> None:
    # UMAFall's S13 has -105 g one-sample spikes in its ADLs; a clipped spike would look like an impact.
    t, acc = sample(walking, hz)
    k = int(FALL_AT * hz)
    acc[k] = [-105.0, 3.0, 0.5]
    times, _ = extract_candidates(t, acc)
    assert not any(abs(x - t[k]) < 1.0 for x in times)
    assert detect_falls(t, acc) == []


def test_repeated_samples_change_nothing() -> None:
    t, acc = sample(fall, 50)
    twice_t, twice_a = np.repeat(t, 2), np.repeat(acc, 2, axis=0)
    assert detect_falls(twice_t, twice_a) == detect_falls(t, acc)


@pytest.mark.parametrize("range_g", [8.0, 16.0])
def test_a_fall_is_found_whatever_the_sensor_range(range_g: float) -> None:
    t, acc = sample(fall, 50)
    assert _falls_near(detect_falls(t, np.clip(acc * 1.5, -range_g, range_g) / 1.5), t[0]) == 1
    assert _falls_near(detect_falls(t, np.clip(acc, -range_g, range_g)), t[0]) == 1


def test_streamed_candidates_have_the_offline_features_exactly() -> None:
    # Gaps (one bridged, one restarting the stream), irregular batches and a hard walk: every
    # candidate the streaming path scores must carry the same numbers as the offline path's.
    rng = np.random.default_rng(3)
    t, acc = sample(fall, 50, 120)
    acc[(t - t[0] > 60) & (t - t[0] < 60.1)] = 3.0 * UP
    keep = ~((t - t[0] > 30) & (t - t[0] < 30.5)) & ~((t - t[0] > 80) & (t - t[0] < 83))
    t, acc = t[keep], acc[keep]
    times, feats = extract_candidates(t, acc)
    assert len(times) >= 2
    stream = FallDetector()._stream
    got = []
    i = 0
    while i < len(t):
        n = int(rng.integers(1, 200))
        got += stream.push(t[i : i + n], np.clip(acc[i : i + n], -8, 8))
        i += n
    assert [(k + 0.5) / GRID_HZ for k, _ in got] == times.tolist()
    assert np.array_equal(np.vstack([f for _, f in got]), feats)


def test_one_huge_batch_then_small_ones_match_offline() -> None:
    # A long first batch grows the buffer; later 1 s batches must reuse and shrink it correctly.
    t, acc = sample(lambda x: fall(x, 300.0), 50, 400)
    detector = FallDetector()
    cut = np.searchsorted(t, t[0] + 250)
    streamed = detector.push(t[:cut], acc[:cut])
    for k in range(cut, len(t), 50):
        streamed += detector.push(t[k : k + 50], acc[k : k + 50])
    assert streamed == detect_falls(t, acc)
    assert _falls_near(streamed, t[0], 300.0) == 1
    assert detector.buffered_samples() <= (max(PRE_S, LOOKBACK_S) + NMS_S + POST_S + 2) * GRID_HZ


def test_single_sample_batches_match_offline() -> None:
    t, acc = sample(fall, 25, 30)
    detector = FallDetector()
    streamed = [f for k in range(len(t)) for f in detector.push(t[k : k + 1], acc[k : k + 1])]
    assert streamed == detect_falls(t, acc)


def test_detection_arrives_after_the_post_impact_window() -> None:
    t, acc = sample(fall, 50)
    detector = FallDetector()
    cut = np.searchsorted(t, t[0] + FALL_AT + POST_S - 1.0)
    assert detector.push(t[:cut], acc[:cut]) == []
    assert _falls_near(detector.push(t[cut:], acc[cut:]), t[0]) == 1


def test_irregular_and_bursty_timestamps() -> None:
    rng = np.random.default_rng(7)
    t, acc = sample(fall, 50)
    jittered = t + rng.uniform(-0.008, 0.008, len(t))
    assert _falls_near(detect_falls(jittered, acc), t[0]) == 1
    # Bursts: a gateway stamps groups of three samples with one time, and drops a sixth of them.
    bursty = t[0] + np.floor((t - t[0]) / 0.06) * 0.06
    keep = rng.random(len(t)) > 1 / 6
    assert _falls_near(detect_falls(bursty[keep], acc[keep]), t[0]) == 1
    # Batches that arrive shuffled within themselves are sorted before use.
    order = rng.permutation(len(t))
    assert _falls_near(detect_falls(t[order], acc[order]), t[0]) == 1


def test_short_gaps_are_bridged_and_long_gaps_restart_cleanly() -> None:
    t, acc = sample(fall, 50)
    short_gap = (t - t[0] > 5) & (t - t[0] < 5.5)
    assert _falls_near(detect_falls(t[~short_gap], acc[~short_gap]), t[0]) == 1
    long_gap = (t - t[0] > 5) & (t - t[0] < 12)
    assert _falls_near(detect_falls(t[~long_gap], acc[~long_gap]), t[0]) == 1


def test_memory_stays_bounded_on_a_long_stream() -> None:
    hz = 50
    detector = FallDetector()
    peak = 0
    for minute in range(10):
        t, acc = sample(walking, hz, 60, seed=minute)
        t = t + 60 * minute
        for k in range(0, len(t), hz):
            detector.push(t[k : k + hz], acc[k : k + hz])
            peak = max(peak, detector.buffered_samples())
    assert peak <= (max(PRE_S, LOOKBACK_S) + NMS_S + POST_S + 2) * GRID_HZ


def test_nan_rows_are_dropped() -> None:
    t, acc = sample(fall, 50)
    start = t[0]
    acc[::37] = np.nan
    t[1::53] = np.nan
    assert _falls_near(detect_falls(t, acc), start) == 1


def test_values_beyond_the_range_are_clipped() -> None:
    t, acc = sample(fall, 50)
    acc[np.abs(t - t[0] - FALL_AT) < 0.02] = np.inf
    assert _falls_near(detect_falls(t, acc), t[0]) == 1


@pytest.mark.parametrize(
    ("t", "acc"),
    [
        (np.zeros(10), np.zeros((9, 3))),
        (np.zeros(10), np.zeros((10, 2))),
        (np.zeros((10, 1)), np.zeros((10, 3))),
        (np.zeros(3), [["a", "b", "c"]] * 3),
    ],
)
def test_bad_shapes_raise_a_value_error(t: object, acc: object) -> None:
    with pytest.raises(InvalidSamplesError) as err:
        detect_falls(t, acc)  # type: ignore[arg-type]
    assert isinstance(err.value, ValueError)


def test_empty_and_tiny_batches_detect_nothing() -> None:
    detector = FallDetector()
    assert detector.push(np.zeros(0), np.zeros((0, 3))) == []
    assert detector.push([0.0], [[0.0, 0.0, 1.0]]) == []


def test_snapshot_and_restore_continue_the_stream() -> None:
    t, acc = sample(fall, 50)
    cut = np.searchsorted(t, t[0] + FALL_AT + 2.0)  # impact seen, verdict still pending
    first = FallDetector()
    assert first.push(t[:cut], acc[:cut]) == []
    state = json.loads(json.dumps(first.snapshot()))
    assert len(json.dumps(state)) < 20_000
    resumed = FallDetector.restore(state)
    assert resumed.buffered_samples() == first.buffered_samples()
    assert resumed.push(t[cut:], acc[cut:]) == detect_falls(t, acc)


def test_damaged_snapshot_is_refused() -> None:
    state = FallDetector().snapshot()
    with pytest.raises(DetectionError):
        FallDetector.restore({**state, "version": 99})
    with pytest.raises(DetectionError):
        FallDetector.restore({**state, "buf": "not base64!"})


def test_model_round_trips_through_json() -> None:
    model = FallModel.load()
    again = FallModel.from_dict(model.to_dict())
    x = np.random.default_rng(0).normal(size=(20, len(FEATURE_NAMES))) + 1
    assert np.allclose(model.score(x), again.score(x))


@pytest.mark.parametrize("start_s", [0.1, 0.5, 2.0])
def test_an_impact_at_the_start_of_a_stream_is_a_candidate(start_s: float) -> None:
    # Hand-cut clips and a band that starts streaming mid-fall: the history is padded, not required.
    t, acc = sample(fall, 50)
    keep = t - t[0] >= FALL_AT - start_s
    times, feats = extract_candidates(t[keep], acc[keep])
    assert any(abs(x - t[0] - FALL_AT) < 0.1 for x in times)
    assert np.isfinite(feats).all()
