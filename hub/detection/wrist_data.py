"""The wrist fall datasets in ../shared/datasets, read into one shape: trials of (t seconds, acc g)."""

from __future__ import annotations

import csv
import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from hub.detection.falls import GLITCH_G, DetectionError

FloatArray = NDArray[np.float64]

DATASETS = ("fallalld_wrist", "umafall_wrist", "smartfallmm_watch", "wisdm_watch")
"""Every wrist dataset the model is trained and measured on; wisdm_watch holds no falls."""
FALLALLD_HZ = 238.0
FALLALLD_G_PER_COUNT = 0.000244
CONTINUE_S = 10.0
"""The `continued` protocol: the trial followed by this long of its own last second, repeated."""
SEED = 20240601
_FALLALLD_NAME = re.compile(r"S(\d+)_D2_A(\d+)_T(\d+)_A\.dat\.gz$")


class DatasetMissingError(DetectionError, FileNotFoundError):
    """A dataset folder is absent or holds none of its files."""


@dataclass(frozen=True)
class WristTrial:
    """One recording: sample times (s, any epoch) and acceleration (g, gravity included)."""

    dataset: str
    subject: str
    activity: str
    fall: bool
    t: FloatArray
    acc: FloatArray

    @property
    def group(self) -> str:
        """Subject id unique across datasets (cross-validation groups)."""
        return f"{self.dataset}:{self.subject}"


def folder(root: Path, name: str) -> Path:
    """Where a dataset lives under the datasets root."""
    return root / name if name == "fallalld_wrist" else root / "wrist" / name


def _offset(rng: np.random.Generator) -> float:
    # A clock offset per trial so the phase of samples against the detector's grid varies.
    return float(rng.uniform(1000.0, 1001.0))


def _read_csv_gz(path: Path) -> NDArray[np.float64]:
    # Same numbers as numpy.loadtxt(path, delimiter=",", skiprows=1), many times faster.
    with gzip.open(path, "rb") as f:
        f.readline()
        raw = f.read().strip()
    if not raw:
        return np.zeros((0, 4))
    return np.array(raw.replace(b"\n", b",").split(b","), dtype=np.float64).reshape(-1, 4)


def _fallalld(path: Path) -> Iterator[WristTrial]:
    files = sorted(p for p in path.glob("S*_D2_A*_T*_A.dat.gz") if _FALLALLD_NAME.search(p.name))
    if not files:
        raise DatasetMissingError(f"no FallAllD wrist files (S*_D2_A*_T*_A.dat.gz) in {path}")
    rng = np.random.default_rng(SEED)
    for p in files:
        subject, activity, _ = (int(g) for g in _FALLALLD_NAME.search(p.name).groups())  # type: ignore[union-attr]
        with gzip.open(p, "rb") as f:
            raw = f.read().strip()
        g = np.array(raw.replace(b"\n", b",").split(b","), dtype=np.float64).reshape(-1, 3) * FALLALLD_G_PER_COUNT
        t = _offset(rng) + np.arange(len(g)) / FALLALLD_HZ
        yield WristTrial("fallalld_wrist", f"S{subject:02d}", str(activity), activity >= 101, t, g)


def _converted(name: str, path: Path) -> Iterator[WristTrial]:
    listing = path / "trials.csv"
    if not listing.is_file():
        raise DatasetMissingError(f"no trials.csv in {path}")
    rng = np.random.default_rng(SEED)
    with listing.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        data = _read_csv_gz(path / row["file"])
        if len(data) < 2:
            continue
        yield WristTrial(name, row["subject"], row["activity"], row["is_fall"] == "1",
                         _offset(rng) + data[:, 0], data[:, 1:4].copy())


def load(root: Path, name: str) -> list[WristTrial]:
    """Every trial of one dataset; DatasetMissingError when its folder is absent."""
    path = folder(root, name)
    if not path.is_dir():
        raise DatasetMissingError(f"dataset folder {path} not found (see ../shared/datasets/README.md)")
    if name == "fallalld_wrist":
        return list(_fallalld(path))
    if name not in DATASETS:
        raise DatasetMissingError(f"unknown wrist dataset {name!r}; known: {', '.join(DATASETS)}")
    return list(_converted(name, path))


def native_hz(trials: list[WristTrial]) -> float:
    """Median sample rate over a dataset's trials (its `native` rate, for labels)."""
    rates = [(len(tr.t) - 1) / (tr.t[-1] - tr.t[0]) for tr in trials if tr.t[-1] > tr.t[0]]
    return float(np.median(rates)) if rates else 0.0


def resample(t: FloatArray, acc: FloatArray, hz: float) -> tuple[FloatArray, FloatArray]:
    """The samples as a band at `hz` would send them: averaged over each period, stamped at its end."""
    if len(t) == 0:
        return t, acc
    period = np.floor((t - t[0]) * hz).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, np.diff(period) != 0])
    counts = np.diff(np.r_[starts, len(t)]).astype(np.float64)
    sums = np.add.reduceat(acc, starts, axis=0)
    return t[0] + (period[starts] + 1.0) / hz, sums / counts[:, None]


def continued(t: FloatArray, acc: FloatArray, seconds: float = CONTINUE_S) -> tuple[FloatArray, FloatArray]:
    """The trial followed by `seconds` of its own last second repeated: the wearer stays as they ended."""
    if len(t) < 2:
        return t, acc
    first = int(np.searchsorted(t, t[-1] - 1.0, side="right"))
    first = min(first, len(t) - 1)
    step = float(np.median(np.diff(t[max(0, first - 1) :]))) if len(t) - first > 1 else float(t[-1] - t[-2])
    step = step if step > 0 else 1e-3
    tail_t, tail_a = t[first:] - t[first], acc[first:]
    period = float(tail_t[-1]) + step
    copies = int(np.ceil(seconds / period))
    extra_t = np.concatenate([t[-1] + step + k * period + tail_t for k in range(copies)])
    keep = extra_t <= t[-1] + seconds
    extra_a = np.tile(tail_a, (copies, 1))
    return np.r_[t, extra_t[keep]], np.vstack([acc, extra_a[keep]])


def peak_g(acc: FloatArray) -> float:
    """Largest |a| of a recording, readings beyond any band's range (glitches) left out."""
    ok = (np.abs(acc) <= GLITCH_G).all(axis=1)
    a = acc[ok]
    return float(np.sqrt((a * a).sum(axis=1)).max(initial=0.0))


def wear_hours(t: FloatArray, max_gap_s: float = 1.0) -> float:
    """Hours actually covered by samples: gaps longer than max_gap_s are not wear."""
    d = np.diff(t)
    return float(d[d <= max_gap_s].sum()) / 3600.0
