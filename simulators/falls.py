"""Wrist accelerometer traces for falls and daily movement: synthesised, or replayed from FallAllD."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hub.errors import EldercareError

FALLALLD_RATE_HZ = 238.0
FALLALLD_G_PER_COUNT = 0.000244
_FALLALLD_NAME = re.compile(r"S(\d+)_D2_A(\d+)_T(\d+)_A\.dat\.gz$")
MAX_SAMPLES = 2000  # the hub's limit per IMU batch and axis


class TraceError(EldercareError):
    """A trace could not be made or read."""


@dataclass(frozen=True)
class Trace:
    """Three-axis acceleration in g at `rate_hz`; `source` says where it came from."""

    rate_hz: float
    xyz: np.ndarray  # shape (n, 3), float, g
    source: str

    def payload(self) -> dict[str, object]:
        """The native `imu` body: milli-g integers with scale 0.001 keep the JSON small."""
        milli = np.rint(self.xyz[:MAX_SAMPLES] * 1000).astype(int)
        return {"rate_hz": self.rate_hz, "scale": 0.001, "x": milli[:, 0].tolist(), "y": milli[:, 1].tolist(),
                "z": milli[:, 2].tolist()}

    @property
    def peak_g(self) -> float:
        """Largest acceleration magnitude."""
        return float(np.linalg.norm(self.xyz, axis=1).max())


def synth_fall(rate_hz: float, rng: random.Random, seconds: float = 16.0) -> Trace:
    """Walking, a free-fall dip, an impact of 4-6 g over about 80 ms, a damped bounce, then lying still."""
    n = int(rate_hz * seconds)
    t = np.arange(n) / rate_hz
    nrng = np.random.default_rng(rng.getrandbits(32))
    xyz = np.zeros((n, 3))
    fall_at = rng.uniform(4.0, 5.0)  # a wristband streams continuously: seconds of walking come first
    free = rng.uniform(0.3, 0.5)
    impact = fall_at + free
    upright = np.array([0.1, -0.15, 0.98])
    lying = np.array([rng.choice([-1, 1]) * 0.95, 0.2, rng.uniform(-0.2, 0.2)])
    gait = rng.uniform(1.6, 2.0)  # steps per second
    for i, ti in enumerate(t):
        if ti < fall_at:
            swing = 0.25 * np.sin(2 * np.pi * gait * ti)
            xyz[i] = upright + np.array([swing, 0.5 * swing, 0.6 * swing * np.cos(2 * np.pi * gait * ti)])
        elif ti < impact:
            share = (ti - fall_at) / free
            xyz[i] = upright * (1 - 0.8 * share)  # the wrist drops with the body: magnitude falls towards 0.2 g
        else:
            since = ti - impact
            bounce = np.exp(-since / 0.12) * np.sin(2 * np.pi * 9 * since)
            xyz[i] = lying + rng.uniform(2.5, 5.0) * bounce * np.array([0.8, -0.5, 0.6]) if since < 0.6 else lying
    # A wrist striking the floor: several samples of 4-6 g, not a single spike (FallAllD impacts last 50-150 ms).
    hit = (t >= impact) & (t < impact + 0.08)
    direction = np.array([0.7, -0.4, 0.6]) / np.linalg.norm([0.7, -0.4, 0.6])
    xyz[hit] = lying + rng.uniform(4.0, 6.0) * direction
    xyz += nrng.normal(0, 0.02, xyz.shape)
    return Trace(rate_hz, xyz, "synthetic-fall")


def synth_daily(rate_hz: float, rng: random.Random, seconds: float = 2.0, walking: bool = False) -> Trace:
    """Everyday wrist movement: sitting with small gestures, or walking."""
    n = max(1, int(rate_hz * seconds))
    t = np.arange(n) / rate_hz
    nrng = np.random.default_rng(rng.getrandbits(32))
    base = np.array([0.05, -0.2, 0.97])
    amp = 0.25 if walking else 0.04
    gait = rng.uniform(1.6, 2.0) if walking else rng.uniform(0.2, 0.5)
    swing = amp * np.sin(2 * np.pi * gait * t + rng.uniform(0, 6.28))
    xyz = base + np.stack([swing, 0.5 * swing, 0.3 * swing], axis=1) + nrng.normal(0, 0.01, (n, 3))
    return Trace(rate_hz, xyz, "synthetic-walk" if walking else "synthetic-rest")


def fallalld_trials(folder: Path, falls: bool = True) -> list[Path]:
    """FallAllD wrist trials in `folder`: falls (activity 101-135) or everyday activities (1-44)."""
    if not folder.is_dir():
        raise TraceError(f"no FallAllD folder at {folder}")
    out = []
    for path in sorted(folder.glob("S*_D2_A*_T*_A.dat.gz")):
        m = _FALLALLD_NAME.search(path.name)
        if m and (int(m.group(2)) >= 101) == falls:
            out.append(path)
    if not out:
        raise TraceError(f"no FallAllD wrist trials in {folder}")
    return out


def load_fallalld(path: Path, rate_hz: float, seconds: float = 6.0) -> Trace:
    """One FallAllD trial resampled to `rate_hz`, cut to `seconds` around its peak (never copied anywhere)."""
    try:
        raw = np.loadtxt(path, delimiter=",")
    except (OSError, ValueError) as err:
        raise TraceError(f"cannot read FallAllD trial {path.name}: {err}") from err
    if raw.ndim != 2 or raw.shape[1] < 3:
        raise TraceError(f"{path.name}: expected three columns x, y, z")
    g = raw[:, :3] * FALLALLD_G_PER_COUNT
    peak = int(np.argmax(np.linalg.norm(g, axis=1)))
    start = max(0, peak - int(FALLALLD_RATE_HZ * seconds * 0.4))
    window = g[start:start + int(FALLALLD_RATE_HZ * seconds)]
    src_t = np.arange(len(window)) / FALLALLD_RATE_HZ
    dst_t = np.arange(0, src_t[-1], 1 / rate_hz)[:MAX_SAMPLES]
    resampled = np.stack([np.interp(dst_t, src_t, window[:, k]) for k in range(3)], axis=1)
    return Trace(rate_hz, resampled, f"fallalld:{path.name}")


def fall_trace(rate_hz: float, rng: random.Random, fallalld: Path | None = None) -> Trace:
    """A fall: replayed from a random FallAllD fall trial when a folder is given, else synthesised."""
    if fallalld is not None:
        if fallalld.is_file():
            return load_fallalld(fallalld, rate_hz)
        return load_fallalld(rng.choice(fallalld_trials(fallalld)), rate_hz)
    return synth_fall(rate_hz, rng)
