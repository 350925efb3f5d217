"""Impact candidates of every wrist trial, per sample rate and protocol, cached outside the repository."""

from __future__ import annotations

import hashlib
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from hub.detection import falls, wrist_data
from hub.detection.falls import FEATURE_NAMES, REFRACTORY_S, extract_candidates
from hub.detection.wrist_data import WristTrial

FloatArray = NDArray[np.float64]
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "wrist_falls_cache"
"""Parsed features live outside the repo; np.load without pickles keeps a foreign file harmless."""
PROTOCOLS = ("recorded", "continued")
NAIVE_PEAK_G = 3.0
"""The reference rule: any |a| at or above this is a fall."""
IMPACT_G = 2.0
"""A fall trial whose peak |a| stays below this holds no impact; it is reported apart."""


@dataclass(frozen=True)
class Table:
    """Candidates (features, trial index, time) and per-trial facts of one dataset at one rate and protocol."""

    x: NDArray[np.float32]
    trial: NDArray[np.int64]
    time: FloatArray
    fall: NDArray[np.bool_]
    peak: FloatArray
    hours: FloatArray
    samples: NDArray[np.int64]
    naive_alarms: NDArray[np.int64]

    def rows(self, keep_trials: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Candidate rows that belong to the trials where keep_trials is true."""
        return keep_trials[self.trial]


TABLE_FORMAT = 1
"""Bumped whenever build() changes what it stores."""


def _version() -> str:
    # Features change with the detector's code: a cache from other code is never reused.
    h = hashlib.sha256(str(TABLE_FORMAT).encode())
    for mod in (falls, wrist_data):
        h.update(Path(mod.__file__ or "").read_bytes())
    return h.hexdigest()[:12]


def prepared(trial: WristTrial, rate: float | None, protocol: str) -> tuple[FloatArray, FloatArray]:
    """The trial's samples at `rate` (None: as recorded) under `protocol`."""
    t, acc = trial.t, trial.acc
    if rate is not None:
        t, acc = wrist_data.resample(t, acc, rate)
    if protocol == "continued":
        t, acc = wrist_data.continued(t, acc)
    return t, acc


def naive_alarm_count(t: FloatArray, acc: FloatArray) -> int:
    """Alarms of the peak rule, one per REFRACTORY_S like the model's."""
    ok = (np.abs(acc) <= falls.GLITCH_G).all(axis=1)
    m = np.sqrt((acc * acc).sum(axis=1))
    hits = t[ok & (m >= NAIVE_PEAK_G)]
    count, quiet = 0, -np.inf
    for h in hits:
        if h >= quiet:
            count += 1
            quiet = h + REFRACTORY_S
    return count


def build(trials: list[WristTrial], rate: float | None, protocol: str) -> Table:
    """Extract every candidate of every trial."""
    xs, idx, times = [], [], []
    n = len(trials)
    peak, hours = np.zeros(n), np.zeros(n)
    samples, naive = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    for i, tr in enumerate(trials):
        t, acc = prepared(tr, rate, protocol)
        ct, cx = extract_candidates(t, acc)
        xs.append(cx.astype(np.float32))
        idx.append(np.full(len(ct), i, dtype=np.int64))
        times.append(ct)
        peak[i] = wrist_data.peak_g(acc)
        hours[i] = wrist_data.wear_hours(t)
        samples[i] = len(t)
        naive[i] = naive_alarm_count(t, acc)
    return Table(
        x=np.vstack(xs) if xs else np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32),
        trial=np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64),
        time=np.concatenate(times) if times else np.zeros(0),
        fall=np.array([tr.fall for tr in trials], dtype=bool),
        peak=peak, hours=hours, samples=samples, naive_alarms=naive,
    )


def table(trials: list[WristTrial], name: str, rate: float | None, protocol: str,
          cache: Path | None = DEFAULT_CACHE) -> Table:
    """build(), reusing a cache made by the same code from the same trials."""
    key = f"{name}_{'native' if rate is None else f'{rate:g}hz'}_{protocol}_{_version()}_{len(trials)}.npz"
    path = cache / key if cache is not None else None
    if path is not None and path.exists():
        with np.load(path) as z:
            return Table(**{k: z[k] for k in Table.__dataclass_fields__})
    sys.stderr.write(f"  extracting candidates: {name} {'native' if rate is None else f'{rate:g} Hz'} {protocol}\n")
    tab = build(trials, rate, protocol)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        with tmp.open("wb") as f:
            np.savez(f, **{k: getattr(tab, k) for k in Table.__dataclass_fields__})
        tmp.replace(path)
    return tab
