"""Tests for the synthetic look-alike recordings used as training negatives."""

from __future__ import annotations

import numpy as np
import pytest

from hub.detection import look_alikes
from hub.detection.falls import CANDIDATE_G, extract_candidates


def _posture(g: np.ndarray, start_s: float, stop_s: float) -> np.ndarray:
    part = g[int(start_s * look_alikes.NATIVE_HZ) : int(stop_s * look_alikes.NATIVE_HZ)].mean(axis=0)
    return part / np.linalg.norm(part)


def test_recordings_are_reproducible_from_the_seed() -> None:
    a, b = look_alikes.recordings(2, seed=5), look_alikes.recordings(2, seed=5)
    assert len(a) == 2 * len(look_alikes.KINDS)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], look_alikes.recordings(2, seed=6)[0])


@pytest.mark.parametrize("kind", sorted(look_alikes.KINDS))
def test_each_kind_jolts_hard_enough_to_be_an_impact_candidate(kind: str) -> None:
    rng = np.random.default_rng(3)
    for _ in range(10):
        g = look_alikes.recording(kind, rng)
        assert g.shape == (int(look_alikes.TRIAL_S * look_alikes.NATIVE_HZ), 3)
        assert np.isfinite(g).all()
        assert np.linalg.norm(g, axis=1).max() >= CANDIDATE_G
        t = np.arange(len(g)) / look_alikes.NATIVE_HZ
        times, features = extract_candidates(t, g)
        assert len(times) >= 1
        assert features.shape[0] == len(times)


@pytest.mark.parametrize("kind", ["clapping", "knocking"])
def test_raised_arm_comes_back_near_its_resting_posture(kind: str) -> None:
    # What makes them non-falls: the arm ends within about 25 degrees of where it rested, not on the floor.
    rng = np.random.default_rng(11)
    for _ in range(10):
        g = look_alikes.recording(kind, rng)
        before, after = _posture(g, 0.0, 3.0), _posture(g, 18.5, 20.0)
        assert np.degrees(np.arccos(np.clip(before @ after, -1, 1))) < 30


def test_slaps_leave_the_arm_as_it_was() -> None:
    rng = np.random.default_rng(12)
    for _ in range(10):
        g = look_alikes.recording("slap", rng)
        before, after = _posture(g, 0.0, 6.0), _posture(g, 14.0, 20.0)
        assert np.degrees(np.arccos(np.clip(before @ after, -1, 1))) < 25
