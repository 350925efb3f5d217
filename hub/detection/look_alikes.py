"""Randomised wrist movements that jolt like a fall but are not one, used as extra training negatives."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
NATIVE_HZ = 238.0
TRIAL_S = 20.0
"""Same length as a FallAllD trial, with the movement around the middle."""


def _unit(v: FloatArray) -> FloatArray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _perpendicular(v: FloatArray, rng: np.random.Generator) -> FloatArray:
    """A random unit vector at right angles to v."""
    r = rng.normal(size=3)
    return _unit(r - (r @ v) * v)


def _turn(v: FloatArray, axis: FloatArray, deg: FloatArray) -> FloatArray:
    """Rodrigues rotation of unit vector v about a unit axis, one row per angle."""
    th = np.radians(deg)[:, None]
    return v * np.cos(th) + np.cross(axis, v) * np.sin(th) + axis * (axis @ v) * (1 - np.cos(th))


def _ramp(t: FloatArray, start: float, seconds: float) -> FloatArray:
    return np.clip((t - start) / seconds, 0.0, 1.0)


def _spikes(t: FloatArray, times: FloatArray, width_s: float) -> FloatArray:
    """1 inside any of the short windows that start at `times`, else 0."""
    k = np.searchsorted(times, t, side="right") - 1
    inside = (k >= 0) & (t - times[np.maximum(k, 0)] < width_s)
    return inside.astype(np.float64)


def _repeated_impacts(t: FloatArray, rng: np.random.Generator, along_posture: bool) -> FloatArray:
    """Forearm raised, a run of impacts (claps, knocks, hammering), then lowered near where it was."""
    rest = _unit(rng.normal(size=3))
    axis = _perpendicular(rest, rng)
    lift = rng.uniform(40, 110)
    start, seconds = rng.uniform(5, 9), rng.uniform(3, 10)
    stop = start + seconds
    up_s, down_s = rng.uniform(0.5, 1.5), rng.uniform(0.5, 1.5)
    back = rng.uniform(-25, 25)
    angle = lift * _ramp(t, start - up_s, up_s) - (lift - back) * _ramp(t, stop, down_s)
    a = _turn(rest, axis, angle)
    raised = _turn(rest, axis, np.array([lift]))[0]
    direction = raised if along_posture else _perpendicular(raised, rng)
    rate = rng.uniform(1.0, 4.0)
    n = max(2, int(seconds * rate))
    beats = start + np.arange(n) / rate + rng.normal(0, 0.03, n)
    hit = _spikes(t, np.sort(beats), rng.uniform(0.03, 0.07))
    peak = rng.uniform(1.5, 5.0)
    a += (peak * hit)[:, None] * direction
    swing = ((t > start) & (t < stop)) * (1 - hit) * rng.uniform(0.1, 0.6)
    a += (swing * np.sin(2 * np.pi * rate * (t - start)))[:, None] * direction
    return a


def clapping(t: FloatArray, rng: np.random.Generator) -> FloatArray:
    """Forearms raised, claps across the arm's direction, forearms lowered again."""
    return _repeated_impacts(t, rng, along_posture=False)


def knocking(t: FloatArray, rng: np.random.Generator) -> FloatArray:
    """Forearm raised, knocks or hammer blows along it, forearm lowered again."""
    return _repeated_impacts(t, rng, along_posture=True)


def slap(t: FloatArray, rng: np.random.Generator) -> FloatArray:
    """Walking or standing, one to three hard slaps on a table, and the arm goes on as before."""
    rest = _unit(rng.normal(size=3))
    axis = _perpendicular(rest, rng)
    walk = rng.random() < 0.5
    hz = rng.uniform(0.7, 1.1)
    swing = (rng.uniform(5, 20) if walk else rng.uniform(0, 3)) * np.sin(2 * np.pi * hz * t)
    a = _turn(rest, axis, swing)
    if walk:
        a += (rng.uniform(0.1, 0.35) * np.sin(4 * np.pi * hz * t))[:, None] * rest
    times = rng.uniform(8, 12) + np.cumsum(rng.uniform(0.3, 1.5, rng.integers(1, 4)))
    hit = _spikes(t, times, rng.uniform(0.03, 0.1))
    a += (rng.uniform(2.5, 7.0) * hit)[:, None] * _unit(rest + rng.normal(0, 0.3, 3))
    return a


KINDS: dict[str, Callable[[FloatArray, np.random.Generator], FloatArray]] = {
    "clapping": clapping,
    "knocking": knocking,
    "slap": slap,
}


def recording(kind: str, rng: np.random.Generator) -> FloatArray:
    """One TRIAL_S recording of a look-alike at NATIVE_HZ, in g, with a little sensor noise."""
    t = np.arange(0, TRIAL_S, 1 / NATIVE_HZ)
    a = KINDS[kind](t, rng)
    return a + rng.normal(0, rng.uniform(0.005, 0.03), a.shape)


def recordings(per_kind: int, seed: int) -> list[FloatArray]:
    """per_kind recordings of every kind, reproducible from seed."""
    rng = np.random.default_rng(seed)
    return [recording(kind, rng) for kind in KINDS for _ in range(per_kind)]
