"""Wrist fall detection: impact candidates scored by what happens before and after them."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hub.errors import EldercareError

FloatArray = NDArray[np.float64]

GRID_HZ = 25
"""Internal sample rate; every input rate (20-250 Hz) is averaged or interpolated onto it."""
CLIP_G = 8.0
"""Per-axis range; a ±8 g part is the smallest common wristband range, so larger values never count."""
CANDIDATE_G = 1.6
"""Magnitude a grid sample needs to become an impact candidate (25 Hz averaging blunts peaks)."""
NMS_S = 1.0
"""A candidate must be the largest magnitude within ±this many seconds."""
PRE_S = 4.0
"""History kept before a candidate for the features."""
POST_S = 7.0
"""Seconds after the impact that are looked at; this is also the alarm delay."""
LOOKBACK_S = 10.0
"""How far back a candidate looks for a posture held earlier (sitting back down is not a fall)."""
MAX_GAP_S = 1.0
"""Longer gaps without samples restart the stream instead of being interpolated."""
REFRACTORY_S = 10.0
"""One fall raises one alarm: candidates this soon after a detection are ignored."""
GLITCH_G = 20.0
"""A reading beyond this on any axis is outside every wristband's range (±16 g at most): a glitch, dropped."""
TAIL_S = 1.0
"""Short-data rule: an impact followed by less than POST_S of samples (recording ended, stream paused or
gapped) is judged with the missing aftermath filled by its last second of samples, repeated."""
TAIL_SKIP_S = 0.3
"""The repeated tail starts at least this long after the impact, so the impact itself is not repeated."""
QUANT_PRE_S = 4.0
"""Interval-quantile features (QUANT-style) look from this long before the impact to POST_S after."""
HISTORY_S = max(PRE_S, QUANT_PRE_S)
"""History the features look at; an impact in a younger stretch (stream start, after a gap) is judged
with that history padded by the stretch's first sample, as if the wearer had been so before."""
QUANT_SERIES = ("mag", "dmag", "tilt", "tilt_post")
"""|a|, its first difference, and the angle to the gravity direction before and after the impact."""
QUANT_DEPTH = 4
"""Dyadic levels: whole window, halves, quarters, eighths, sixteenths (each also shifted by half)."""
QUANT_QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Quantiles taken of every interval; the 25% and 75% ones are relative to the interval's mean."""

FEATURE_NAMES = (
    "peak_g",
    "freefall_min_g",
    "freefall_fraction",
    "pre_std_g",
    "pre_mean_g",
    "orientation_change_deg",
    "post_std_g",
    "post_jerk_g",
    "post_max_g",
    "post_mean_g",
    "post_drift_deg",
    "settle_std_g",
    "impact_count",
    "impact_energy_g",
    "pre_turn_deg",
    "post_wobble_deg",
    "late_std_g",
    "late_orientation_change_deg",
    "still_fraction",
    "settle_s",
    "pre_peak_rate",
    "peak_over_pre",
    "post_peak_rate",
    "sharpness_g",
    "fall_speed_mps",
    "impact_speed_mps",
    "return_deg",
    *(f"mag_{k}" for k in range(15)),
    *(f"tilt_{k}" for k in range(18)),
)


def _quant_layout(length: int) -> list[tuple[int, NDArray[np.int64]]]:
    """(interval length, start indices) per dyadic level: k * len, then the half-shifted ones."""
    out = []
    for d in range(QUANT_DEPTH + 1):
        n, ln = 2**d, length // 2**d
        if ln < 2:
            break
        out.append((ln, np.r_[np.arange(n) * ln, np.arange(n - 1) * ln + ln // 2].astype(np.int64)))
    return out


_Q_LEN = round(QUANT_PRE_S * GRID_HZ) + round(POST_S * GRID_HZ)
"""Grid samples of each QUANT series (the first difference has one fewer)."""
QUANT_NAMES = tuple(
    f"q_{name}_{ln}_{start}_{round(100 * q)}"
    for k, name in enumerate(QUANT_SERIES)
    for ln, starts in _quant_layout(_Q_LEN - (name == "dmag"))
    for start in starts
    for q in QUANT_QUANTILES
)
FEATURE_NAMES = FEATURE_NAMES + QUANT_NAMES


def _quant_plan(length: int) -> list[tuple[int, NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], FloatArray]]:
    plan = []
    for ln, starts in _quant_layout(length):
        pos = np.array(QUANT_QUANTILES) * (ln - 1)
        lo_i = np.floor(pos).astype(np.int64)
        plan.append((ln, starts, lo_i, np.minimum(lo_i + 1, ln - 1), pos - lo_i))
    return plan


_QUANT_PLAN = {n: _quant_plan(n) for n in (_Q_LEN, _Q_LEN - 1)}

_MODEL_PATH = Path(__file__).with_name("fall_model.json")


class DetectionError(EldercareError):
    """Base of the errors raised by the detectors."""


class InvalidSamplesError(DetectionError, ValueError):
    """Sample arrays have the wrong shape or type; NaN rows are dropped, not reported."""


def _n(seconds: float) -> int:
    return round(seconds * GRID_HZ)


def _angle_deg(u: FloatArray, v: FloatArray) -> float:
    cos = float(u @ v) / (float(np.linalg.norm(u) * np.linalg.norm(v)) + 1e-9)
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def candidate_features(a: FloatArray, m: FloatArray, j: int, s0: int) -> FloatArray:
    """Feature vector of an impact at grid index j of a (grid samples in g); s0 = first valid index."""
    need = _n(HISTORY_S) + 1
    if j - s0 < need:
        pad = need - (j - s0)
        a = np.vstack([np.repeat(a[s0 : s0 + 1], pad, axis=0), a[s0:]])
        m = np.r_[np.repeat(m[s0], pad), m[s0:]]
        j, s0 = j - s0 + pad, 0

    def win(lo: float, hi: float) -> slice:
        return slice(max(s0, j + _n(lo)), j + _n(hi))

    ff = m[win(-1.0, 0.0)]
    pre = m[win(-PRE_S, -1.0)]
    if pre.size < 2:
        pre = m[win(-1.0, -0.2)]
    g_pre = a[win(-2.0, -0.8)].mean(axis=0)
    g_pre_early = a[win(-PRE_S, -2.0)]
    g_pre_early_mean = g_pre_early.mean(axis=0) if len(g_pre_early) else g_pre
    post_a = a[win(1.5, POST_S)]
    post_m = m[win(1.5, POST_S)]
    g_post = post_a.mean(axis=0)
    half = len(post_a) // 2
    around = m[win(-1.0, 1.0)]
    late = win(POST_S - 2.0, POST_S)
    after = m[win(1.0, POST_S)]
    step = _n(0.4)
    chunks = after[: len(after) // step * step].reshape(-1, step).std(axis=1)
    still = np.flatnonzero(chunks < 0.05)
    pre_max = m[win(-PRE_S, -1.0)].max(initial=1.0)
    # Speed gained while |a| < 1 g is the speed of a drop, whatever the wrist's orientation.
    drop = np.r_[0.0, np.cumsum(1.0 - m[win(-1.5, 0.0)])] * 9.81 / GRID_HZ
    stop = np.cumsum(m[win(0.0, 0.6)] - 1.0) * 9.81 / GRID_HZ
    return np.array(
        [
            m[j],
            ff.min(),
            float(np.mean(ff < 0.6)),
            pre.std(),
            pre.mean(),
            _angle_deg(g_pre, g_post),
            post_m.std(),
            float(np.abs(np.diff(post_a, axis=0)).sum(axis=1).mean()),
            post_m.max(),
            post_m.mean(),
            _angle_deg(post_a[:half].mean(axis=0), post_a[half:].mean(axis=0)),
            m[win(0.5, 1.5)].std(),
            float(np.count_nonzero(around >= CANDIDATE_G)) / GRID_HZ,
            float(np.abs(m[win(-0.6, 0.6)] - 1.0).mean()),
            _angle_deg(g_pre_early_mean, g_pre),
            float(np.mean([_angle_deg(x, g_post) for x in post_a[:: max(1, _n(0.2))]])),
            m[late].std(),
            _angle_deg(g_pre, a[late].mean(axis=0)),
            float(np.mean(chunks < 0.05)),
            1.0 + (still[0] * step) / GRID_HZ if len(still) else POST_S,
            float(np.count_nonzero(m[win(-PRE_S, -1.0)] >= CANDIDATE_G)) / (PRE_S - 1.0),
            m[j] / pre_max,
            float(np.count_nonzero(after >= CANDIDATE_G)) / (POST_S - 1.0),
            m[j] - 0.5 * (m[max(s0, j - 2)] + m[j + 2]),
            float((drop - np.minimum.accumulate(drop)).max()),
            float(stop.max()),
            _return_deg(a, g_post, j, s0),
            *_profile(m, j, s0),
            *_tilt(a, g_pre, j, s0),
            *_quant(a, j, s0),
        ]
    )


def _quant(a: FloatArray, j: int, s0: int) -> FloatArray:
    """Quantiles of dyadic intervals (QUANT, Dempster et al. 2024) of |a|, its difference and two tilts.

    The window runs from QUANT_PRE_S before to POST_S after the impact, padded with the first valid
    sample when the stream is younger; only magnitudes and angles, so axis orientation does not matter.
    """
    lo = j - _n(QUANT_PRE_S)
    src = a[max(s0, lo) : j + _n(POST_S)]
    w = np.vstack([np.repeat(src[:1], _Q_LEN - len(src), axis=0), src]) if len(src) < _Q_LEN else src
    m = np.sqrt((w * w).sum(axis=1))
    u = w / (m[:, None] + 1e-9)
    pre = _n(QUANT_PRE_S)
    g_pre = w[pre - _n(2.0) : pre - _n(0.8)].mean(axis=0)
    g_post = w[pre + _n(1.5) : pre + _n(POST_S)].mean(axis=0)
    tilts = [np.degrees(np.arccos(np.clip(u @ (g / (np.linalg.norm(g) + 1e-9)), -1.0, 1.0))) for g in (g_pre, g_post)]
    out = []
    for x in (m, np.diff(m), *tilts):
        for ln, starts, lo_i, hi_i, frac in _QUANT_PLAN[len(x)]:
            seg = np.sort(x[starts[:, None] + np.arange(ln)], axis=1)
            q = seg[:, lo_i] + (seg[:, hi_i] - seg[:, lo_i]) * frac  # np.quantile's linear method
            q[:, 1::2] -= seg.mean(axis=1, keepdims=True)
            out.append(q.ravel())
    return np.concatenate(out)


def _return_deg(a: FloatArray, g_post: FloatArray, j: int, s0: int) -> float:
    """Smallest angle between the post-impact posture and any 1 s posture held in the look-back."""
    step = _n(1.0)
    lo = max(s0, j - _n(LOOKBACK_S))
    seg = a[lo : lo + (j - _n(1.0) - lo) // step * step]
    if not len(seg):
        return 180.0
    mean = seg.reshape(-1, step, 3).mean(axis=1)
    cos = mean @ g_post / (np.linalg.norm(mean, axis=1) * np.linalg.norm(g_post) + 1e-9)
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).min())


def _profile(m: FloatArray, j: int, s0: int) -> FloatArray:
    """Mean magnitude in 0.2 s steps from 1.5 s before to 1.5 s after the impact."""
    step = _n(0.2)
    lo = j - 7 * step - step // 2
    seg = m[max(s0, lo) : lo + 15 * step]
    seg = np.r_[np.full(15 * step - len(seg), seg[0]), seg]
    return seg.reshape(15, step).mean(axis=1)


def _tilt(a: FloatArray, g_pre: FloatArray, j: int, s0: int) -> FloatArray:
    """Angle to the pre-impact gravity direction in 0.5 s steps from 2 s before to 7 s after."""
    step = _n(0.5)
    lo = j - 4 * step
    seg = a[max(s0, lo) : lo + 18 * step]
    seg = np.vstack([np.repeat(seg[:1], 18 * step - len(seg), axis=0), seg])
    mean = seg.reshape(18, step, 3).mean(axis=1)
    cos = mean @ g_pre / (np.linalg.norm(mean, axis=1) * np.linalg.norm(g_pre) + 1e-9)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _short(values: FloatArray) -> list[float]:
    # Seven significant digits keep the JSON small; scores move by far less than the margin.
    return [float(f"{v:.7g}") for v in values]


@dataclass(frozen=True)
class FallModel:
    """Boosted depth-2 trees over FEATURE_NAMES; a score at or above `threshold` is a fall."""

    base: float
    features: NDArray[np.int64]
    splits: FloatArray
    leaves: FloatArray
    threshold: float

    def score(self, x: FloatArray) -> FloatArray:
        """Log-odds of a fall for each row of x (n, len(FEATURE_NAMES))."""
        f, s = self.features, self.splits
        right = x[:, f[:, 0]] > s[:, 0]
        second = np.where(right, x[:, f[:, 2]] > s[:, 2], x[:, f[:, 1]] > s[:, 1])
        leaf = 2 * right.astype(np.int64) + second
        return self.base + np.take_along_axis(self.leaves[None, :, :], leaf[:, :, None], axis=2).sum(
            axis=(1, 2)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of the model."""
        return {
            "feature_names": list(FEATURE_NAMES),
            "grid_hz": GRID_HZ,
            "base": self.base,
            "threshold": self.threshold,
            "trees": [
                {"features": f.tolist(), "splits": _short(s), "leaves": _short(v)}
                for f, s, v in zip(self.features, self.splits, self.leaves, strict=True)
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FallModel:
        """Model from `to_dict` output; refuses a model trained on other features."""
        if tuple(data["feature_names"]) != FEATURE_NAMES or data["grid_hz"] != GRID_HZ:
            raise DetectionError("fall model was trained on different features; retrain it")
        trees = data["trees"]
        return cls(
            base=float(data["base"]),
            features=np.array([t["features"] for t in trees], dtype=np.int64).reshape(-1, 3),
            splits=np.array([t["splits"] for t in trees], dtype=np.float64).reshape(-1, 3),
            leaves=np.array([t["leaves"] for t in trees], dtype=np.float64).reshape(-1, 4),
            threshold=float(data["threshold"]),
        )

    @classmethod
    def load(cls, path: Path = _MODEL_PATH) -> FallModel:
        """Model stored as JSON (default: the committed fall_model.json)."""
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def _check(t: Any, acc: Any) -> tuple[FloatArray, FloatArray]:
    try:
        t_arr = np.asarray(t, dtype=np.float64)
        a_arr = np.asarray(acc, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InvalidSamplesError(f"samples are not numeric: {err}") from err
    if t_arr.ndim != 1 or a_arr.ndim != 2 or a_arr.shape[1] != 3:
        raise InvalidSamplesError(f"expected t (N,) and acc (N, 3), got {t_arr.shape} and {a_arr.shape}")
    if len(t_arr) != len(a_arr):
        raise InvalidSamplesError(f"t has {len(t_arr)} samples but acc has {len(a_arr)}")
    # Sums are a cheap test that no row needs dropping (±inf together may also give NaN: slow path).
    if not (np.isfinite(t_arr.sum()) and not np.isnan(a_arr.sum())):
        # A dropped reading is common on a radio link; losing one row is better than losing the batch.
        keep = np.isfinite(t_arr) & ~np.isnan(a_arr).any(axis=1)
        t_arr, a_arr = t_arr[keep], a_arr[keep]
    if np.abs(a_arr).max(initial=0.0) > GLITCH_G:
        # A one-sample -105 g spike is a sensor or radio glitch, not an impact: drop the row.
        valid = (np.abs(a_arr) <= GLITCH_G).all(axis=1)
        t_arr, a_arr = t_arr[valid], a_arr[valid]
    a_arr = np.minimum(np.maximum(a_arr, -CLIP_G), CLIP_G)  # np.clip, at half its call overhead
    if len(t_arr) > 1 and (t_arr[1:] < t_arr[:-1]).any():
        order = np.argsort(t_arr, kind="stable")
        t_arr, a_arr = t_arr[order], a_arr[order]
    return t_arr, a_arr


def pad_aftermath(buf: FloatArray, j: int) -> FloatArray:
    """Grid samples buf, ending before the impact at j has its POST_S, continued by the TAIL_S rule."""
    need = j + _n(POST_S) + 2 - len(buf)
    if need <= 0:
        return buf
    tail = buf[max(j + _n(TAIL_SKIP_S), len(buf) - _n(TAIL_S)) :]
    if not len(tail):
        tail = buf[-1:]  # the stream stopped right at the impact: the last reading held
    return np.vstack([buf, np.resize(tail, (need, 3))])


_KEEP = _n(max(PRE_S, LOOKBACK_S) + NMS_S)
"""Grid samples kept before the next one to scan: its look-back plus the peak test."""
_CAPACITY = _KEEP + _n(POST_S) + _n(4.0)
"""Rows preallocated per device (13 kB): room for 4 s of batches before old rows are moved."""


class _Stream:
    """Averages samples onto the grid and yields impact candidates with their features.

    Grid samples live in a preallocated array, `store`; the live ones are rows off .. off + n,
    grid index buf_start onwards. Dropping old rows moves `off`; rows are copied back to the
    front only when the array fills up.
    """

    def __init__(self) -> None:
        self.pend_bin: int | None = None
        self.pend_sum = np.zeros(3)
        self.pend_n = 0
        self.last_bin: int | None = None
        self.last_val = np.zeros(3)
        self.store = np.zeros((_CAPACITY, 3))
        self.off = 0
        self.n = 0
        self.buf_start = 0  # grid index of store[off]
        self.seg_start = 0  # grid index where the current continuous stretch began
        self.next_scan = 0

    @property
    def buf(self) -> FloatArray:
        """The live grid samples (a view)."""
        return self.store[self.off : self.off + self.n]

    def load(self, buf: FloatArray) -> None:
        """Replace the live grid samples (restoring a snapshot)."""
        self.off, self.n = 0, 0
        self._reserve(len(buf))
        self.store[: len(buf)] = buf
        self.n = len(buf)

    def push(self, t: FloatArray, a: FloatArray) -> list[tuple[int, FloatArray]]:
        """Add sorted, clipped samples; return (grid index, features) of completed candidates."""
        bins = np.floor(t * GRID_HZ).astype(np.int64)
        if self.pend_bin is not None and len(bins) and bins[0] < self.pend_bin:
            # Late samples would rewrite grid values already used; drop them (t is sorted).
            k = int(np.searchsorted(bins, self.pend_bin))
            bins, a = bins[k:], a[k:]
        if not len(bins):
            return []
        change = np.flatnonzero(bins[1:] != bins[:-1]) + 1
        if len(change) == len(bins) - 1:  # one sample per grid step, the usual case at 25 Hz
            ub, sums, counts = bins, a.copy(), np.ones(len(bins))
        else:
            starts = np.concatenate(([0], change))
            ub = bins[starts]
            sums = np.add.reduceat(a, starts, axis=0)
            counts = np.diff(np.append(starts, len(bins))).astype(np.float64)
        if self.pend_bin is not None:
            if ub[0] == self.pend_bin:
                sums[0] += self.pend_sum
                counts[0] += self.pend_n
            else:
                ub = np.concatenate(([self.pend_bin], ub))
                sums = np.concatenate((self.pend_sum[None, :], sums))
                counts = np.concatenate(([self.pend_n], counts))
        self.pend_bin, self.pend_sum, self.pend_n = int(ub[-1]), sums[-1].copy(), int(counts[-1])
        if len(ub) == 1:
            return []
        return self._complete(ub[:-1], sums[:-1] / counts[:-1, None])

    def _complete(self, bins: NDArray[np.int64], vals: FloatArray) -> list[tuple[int, FloatArray]]:
        last, last_val = self.last_bin, self.last_val
        first = int(bins[0]) if last is None else last + 1
        self.last_bin, self.last_val = int(bins[-1]), vals[-1].copy()
        if int(bins[-1]) - first == len(bins) - 1:
            # No missing grid step: nothing to interpolate (interp would return vals unchanged).
            if last is None:
                self._reset(first)
            return self._append(vals)
        out: list[tuple[int, FloatArray]] = []
        anchored = last is not None
        if last is not None:
            bins = np.concatenate((np.array([last], dtype=np.int64), bins))
            vals = np.concatenate((last_val[None, :], vals))
        else:
            self._reset(int(bins[0]))
        breaks = np.flatnonzero(np.diff(bins) > _n(MAX_GAP_S)) + 1
        for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(bins)], strict=True):
            if lo > 0:
                out += self._flush()  # the stretch before the gap ends here: judge what it still owes
                self._reset(int(bins[lo]))
            grid = np.arange(bins[lo], bins[hi - 1] + 1)
            dense = np.column_stack([np.interp(grid, bins[lo:hi], vals[lo:hi, k]) for k in range(3)])
            # The anchor is the last grid sample of the previous push, already buffered.
            out += self._append(dense[1:] if anchored and lo == 0 else dense)
        return out

    def finish(self) -> list[tuple[int, FloatArray]]:
        """No more samples for now (recording ended, stream paused): judge every pending impact, start afresh."""
        out: list[tuple[int, FloatArray]] = []
        if self.pend_bin is not None:
            out += self._complete(np.array([self.pend_bin], dtype=np.int64), (self.pend_sum / self.pend_n)[None, :])
        out += self._flush()
        self.pend_bin, self.pend_sum, self.pend_n = None, np.zeros(3), 0
        self.last_bin, self.last_val = None, np.zeros(3)
        self.off = self.n = 0
        return out

    def _flush(self) -> list[tuple[int, FloatArray]]:
        """Candidates of the current stretch not yet judged, each with its aftermath padded (TAIL_S rule)."""
        hi = self.n
        lo = self.next_scan - self.buf_start
        self.next_scan = self.buf_start + hi
        if hi <= lo or lo < 0:
            return []
        buf = self.buf
        m = np.sqrt((buf * buf).sum(axis=1))
        if m[lo:hi].max() < CANDIDATE_G:
            return []
        s0 = self.seg_start - self.buf_start
        nms = _n(NMS_S)
        out: list[tuple[int, FloatArray]] = []
        for j in np.flatnonzero(m[lo:hi] >= CANDIDATE_G) + lo:
            if m[j] > m[max(s0, j - nms) : j].max(initial=0.0) and m[j] >= m[j + 1 : j + nms + 1].max(initial=0.0):
                padded = pad_aftermath(buf[:hi], int(j))
                pm = np.sqrt((padded * padded).sum(axis=1))
                out.append((int(j) + self.buf_start, candidate_features(padded, pm, int(j), s0)))
        return out

    def _reset(self, start: int) -> None:
        self.off = self.n = 0
        self.buf_start = self.seg_start = start
        self.next_scan = start

    def _reserve(self, extra: int) -> None:
        """Make room for `extra` more rows after the live ones."""
        if self.off + self.n + extra <= len(self.store):
            return
        size = max(_CAPACITY, 2 * (self.n + extra))
        live = self.store[self.off : self.off + self.n]
        if size == len(self.store):
            self.store[: self.n] = live  # numpy copies overlapping ranges safely
        else:
            self.store = np.zeros((size, 3))
            self.store[: self.n] = live
        self.off = 0

    def _append(self, dense: FloatArray) -> list[tuple[int, FloatArray]]:
        self._reserve(len(dense))
        at = self.off + self.n
        self.store[at : at + len(dense)] = dense
        self.n += len(dense)
        stop = self.buf_start + self.n - _n(POST_S)  # candidates need their whole post-impact window
        out: list[tuple[int, FloatArray]] = []
        if stop > self.next_scan:
            lo = self.next_scan - self.buf_start
            buf = self.buf
            scan = buf[lo : stop - self.buf_start]
            # The gate: a quiet stretch costs the magnitudes of its new grid steps and one max().
            if np.sqrt((scan * scan).sum(axis=1)).max() >= CANDIDATE_G:
                m = np.sqrt((buf * buf).sum(axis=1))  # what np.linalg.norm(buf, axis=1) computes
                hits = np.flatnonzero(m[lo : stop - self.buf_start] >= CANDIDATE_G) + lo
                s0 = self.seg_start - self.buf_start
                nms = _n(NMS_S)
                for j in hits:
                    if m[j] > m[max(s0, j - nms) : j].max(initial=0.0) and m[j] >= m[j + 1 : j + nms + 1].max():
                        out.append((int(j) + self.buf_start, candidate_features(buf, m, int(j), s0)))
            self.next_scan = stop
        keep_from = max(self.next_scan - _KEEP, self.buf_start)
        drop = keep_from - self.buf_start
        self.off += drop
        self.n -= drop
        self.buf_start = keep_from
        return out


class FallDetector:
    """Streaming fall detector for one device.

    model: scoring model (default: the committed fall_model.json). Feed consecutive batches with
    `push(t, acc)`; t in seconds (any epoch), acc in g including gravity. Memory stays bounded,
    detections arrive POST_S seconds after the impact, or at `finish()` when the stream stops first;
    push(...) + finish() matches `detect_falls` on the same samples, however they are batched.
    Rows with NaN or a glitch beyond GLITCH_G are dropped; so are samples older than the last
    averaged grid step.
    """

    def __init__(self, model: FallModel | None = None) -> None:
        self.model = model if model is not None else FallModel.load()
        self._stream = _Stream()
        self._quiet_until = -(2**62)

    def push(self, t: Sequence[float] | FloatArray, acc: Sequence[Sequence[float]] | FloatArray) -> list[float]:
        """Add a batch of samples; return times (s) of falls detected in it, at the impact."""
        return self._judge(self._stream.push(*_check(t, acc)))

    def finish(self) -> list[float]:
        """The stream ended or paused: judge impacts still waiting for their aftermath (TAIL_S rule).

        Later samples start a fresh stretch, as after a gap longer than MAX_GAP_S.
        """
        return self._judge(self._stream.finish())

    def _judge(self, cands: list[tuple[int, FloatArray]]) -> list[float]:
        found: list[float] = []
        if not cands:
            return found
        scores = self.model.score(np.vstack([f for _, f in cands]))
        for (k, _), s in zip(cands, scores, strict=True):
            if s >= self.model.threshold and k >= self._quiet_until:
                found.append((k + 0.5) / GRID_HZ)
                self._quiet_until = k + _n(REFRACTORY_S)
        return found

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready state (about 10 kB), so a hub restart does not lose an impact under watch."""
        st = self._stream
        return {
            "version": 1,
            "grid_hz": GRID_HZ,
            "pend_bin": st.pend_bin,
            "pend_sum": st.pend_sum.tolist(),
            "pend_n": st.pend_n,
            "last_bin": st.last_bin,
            "last_val": st.last_val.tolist(),
            "buf": base64.b64encode(np.ascontiguousarray(st.buf, dtype="<f8").tobytes()).decode("ascii"),
            "buf_start": st.buf_start,
            "seg_start": st.seg_start,
            "next_scan": st.next_scan,
            "quiet_until": self._quiet_until,
        }

    @classmethod
    def restore(cls, state: Mapping[str, Any], model: FallModel | None = None) -> FallDetector:
        """Detector continuing from a `snapshot`; raises DetectionError if the state does not fit."""
        if state.get("version") != 1 or state.get("grid_hz") != GRID_HZ:
            raise DetectionError("fall detector state is from another version; start afresh")
        det = cls(model)
        st = det._stream
        try:
            st.pend_bin = None if state["pend_bin"] is None else int(state["pend_bin"])
            st.pend_sum = np.array(state["pend_sum"], dtype=np.float64).reshape(3)
            st.pend_n = int(state["pend_n"])
            st.last_bin = None if state["last_bin"] is None else int(state["last_bin"])
            st.last_val = np.array(state["last_val"], dtype=np.float64).reshape(3)
            raw = base64.b64decode(state["buf"], validate=True)
            st.load(np.frombuffer(raw, dtype="<f8").reshape(-1, 3).astype(np.float64))
            st.buf_start, st.seg_start = int(state["buf_start"]), int(state["seg_start"])
            st.next_scan = int(state["next_scan"])
            det._quiet_until = int(state["quiet_until"])
        except (KeyError, TypeError, ValueError, binascii.Error) as err:
            raise DetectionError(f"fall detector state is damaged: {err}") from err
        return det

    def buffered_samples(self) -> int:
        """Grid samples currently held (bounded by the pre/post windows, not by stream length)."""
        return self._stream.n


def detect_falls(t: Sequence[float] | FloatArray, acc: Sequence[Sequence[float]] | FloatArray,
                 model: FallModel | None = None) -> list[float]:
    """Times (s) of falls in a recording, impacts near its end included; InvalidSamplesError on bad shapes."""
    detector = FallDetector(model)
    return detector.push(t, acc) + detector.finish()


def extract_candidates(t: FloatArray, acc: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Impact times (s) and feature rows of every candidate in a recording, for training."""
    stream = _Stream()
    cands = stream.push(*_check(t, acc)) + stream.finish()
    if not cands:
        return np.zeros(0), np.zeros((0, len(FEATURE_NAMES)))
    return (np.array([(k + 0.5) / GRID_HZ for k, _ in cands]), np.vstack([f for _, f in cands]))
