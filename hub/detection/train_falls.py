"""Train the wrist fall model on FallAllD: `python -m hub.detection.train_falls PATH`."""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from hub.detection import look_alikes
from hub.detection.falls import FEATURE_NAMES, DetectionError, FallModel, extract_candidates

NATIVE_HZ = 238.0
COUNTS_TO_G = 0.000244
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "fallalld_wrist_cache.npz"
"""Parsed arrays live outside the repo; np.load without pickles keeps a foreign file harmless."""
TRAIN_RATES = (NATIVE_HZ, 25.0)
"""Rates whose candidates are pooled for training, so the model sees both sharp and blunted peaks."""
ROUNDS, LEARNING_RATE, MIN_LEAF, N_BINS, L2, DEPTH, MIL_ROUNDS = 300, 0.1, 20, 32, 1.0, 2, 1
"""Fixed for every fold (never tuned per fold); see docs/detection.md for how they were picked."""
COLSAMPLE = 0.1
"""Share of the features each tree may split on (drawn per tree with a fixed seed): over a thousand
interval quantiles, mostly redundant, would otherwise make training slow and let one series dominate."""
TARGET_SENSITIVITY = 0.96
"""Share of held-out training subjects' falls the threshold keeps: the 95% requirement plus a margin."""
INNER_FOLDS = 4
SEED = 20240601
LOOK_ALIKES_PER_KIND = 100
"""Synthetic claps, knocks and slaps (hub/detection/look_alikes.py) added to every training set as
non-falls: FallAllD has few of them, and a model trained without them alarmed on about one in eight."""
LOOK_ALIKE_GROUP = -1
"""Subject id of the synthetic recordings: no real subject, so no fold ever holds them out."""
_NAME = re.compile(r"S(\d+)_D2_A(\d+)_T(\d+)_A\.dat\.gz$")

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Trials:
    """FallAllD wrist trials: raw counts (trials, samples, 3) and per-trial labels."""

    counts: NDArray[np.int16]
    subject: IntArray
    activity: IntArray
    trial: IntArray

    @property
    def fall(self) -> NDArray[np.bool_]:
        """True for fall trials (activity 101-135)."""
        return self.activity >= 101

    def subset(self, keep: NDArray[np.bool_]) -> Trials:
        """Trials where keep is true."""
        return Trials(self.counts[keep], self.subject[keep], self.activity[keep], self.trial[keep])


class DatasetMissingError(DetectionError, FileNotFoundError):
    """The dataset folder is absent or holds no FallAllD wrist files."""


def _parse(path: Path) -> NDArray[np.int16]:
    # Same result as numpy.loadtxt(path, delimiter=","), about 20x faster.
    with gzip.open(path, "rb") as f:
        raw = f.read().strip()
    return np.array(raw.replace(b"\n", b",").split(b","), dtype=np.int16).reshape(-1, 3)


def load_fallalld(folder: Path, cache: Path | None = DEFAULT_CACHE) -> Trials:
    """Read every trial of the folder, reusing a parsed cache when it lists the same files."""
    files = sorted(p for p in folder.glob("S*_D2_A*_T*_A.dat.gz") if _NAME.search(p.name))
    if not files:
        raise DatasetMissingError(f"no FallAllD wrist files (S*_D2_A*_T*_A.dat.gz) in {folder}")
    names = np.array([p.name for p in files])
    if cache is not None and cache.exists():
        with np.load(cache) as z:
            if np.array_equal(z["names"], names):
                return Trials(z["counts"], z["subject"], z["activity"], z["trial"])
    meta = np.array([[int(g) for g in _NAME.search(p.name).groups()] for p in files])  # type: ignore[union-attr]
    arrays = [_parse(p) for p in files]
    n = min(len(a) for a in arrays)
    trials = Trials(np.stack([a[:n] for a in arrays]), meta[:, 0], meta[:, 1], meta[:, 2])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with cache.open("wb") as f:
            np.savez(f, names=names, counts=trials.counts, subject=trials.subject,
                     activity=trials.activity, trial=trials.trial)
    return trials


def resample(counts: NDArray[np.int16] | FloatArray, hz: float, offset: float) -> tuple[FloatArray, FloatArray]:
    """Times and g values as a wristband at `hz` would send them: averaged over each period."""
    g = counts.astype(np.float64) * COUNTS_TO_G
    t = offset + np.arange(len(g)) / NATIVE_HZ
    if hz >= NATIVE_HZ:
        return t, g
    period = np.floor((t - offset) * hz).astype(np.int64)
    counts_per = np.bincount(period)
    full = counts_per >= np.floor(NATIVE_HZ / hz)
    sums = np.stack([np.bincount(period, g[:, k]) for k in range(3)], axis=1)
    idx = np.flatnonzero(full)
    # Stamped at the end of each period, when a wristband would have the average ready.
    return np.asarray(offset + (idx + 1.0) / hz, dtype=np.float64), sums[idx] / counts_per[idx, None]


def trial_offsets(n: int, seed: int = SEED) -> FloatArray:
    """Random clock offsets per trial so sample phase against the internal grid varies."""
    return np.random.default_rng(seed).uniform(1000.0, 1001.0, n)


def candidate_table(trials: Trials, rates: Sequence[float] = TRAIN_RATES) -> dict[str, FloatArray]:
    """Features of every candidate with its trial index, fall-trial flag and bag (trial x rate)."""
    rows: list[FloatArray] = []
    trial_idx: list[int] = []
    rate_of: list[float] = []
    offsets = trial_offsets(len(trials.subject))
    for hz in rates:
        for i in range(len(trials.subject)):
            _, x = extract_candidates(*resample(trials.counts[i], hz, offsets[i]))
            rows.append(x)
            trial_idx += [i] * len(x)
            rate_of += [hz] * len(x)
    trial = np.array(trial_idx, dtype=np.int64)
    rate = np.array(rate_of)
    return {
        "x": np.vstack(rows),
        "trial": trial,
        "fall": trials.fall[trial].astype(np.int64),
        "bag": trial * len(rates) + np.searchsorted(np.sort(rates), rate),
        "rate": rate,
    }


@cache
def look_alike_table(rates: tuple[float, ...] = TRAIN_RATES) -> dict[str, FloatArray]:
    """Candidates of the synthetic look-alikes, in candidate_table's layout (bags numbered from 0)."""
    rng = np.random.default_rng(SEED + 1)
    rows: list[FloatArray] = []
    bags: list[int] = []
    recordings = look_alikes.recordings(LOOK_ALIKES_PER_KIND, SEED)
    for k, hz in enumerate(sorted(rates)):
        for i, g in enumerate(recordings):
            _, x = extract_candidates(*resample(g / COUNTS_TO_G, hz, rng.uniform(0, 1)))
            rows.append(x)
            bags += [i * len(rates) + k] * len(x)
    n = len(bags)
    return {"x": np.vstack(rows), "bag": np.array(bags, dtype=np.int64), "fall": np.zeros(n, dtype=np.int64)}


def _histograms(xb: IntArray, g: FloatArray, h: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Gradient, hessian and row sums per (feature, bin) of binned rows xb."""
    n_feat = xb.shape[1]
    flat = (xb + np.arange(n_feat) * N_BINS).ravel()
    size = n_feat * N_BINS
    gs = np.bincount(flat, np.repeat(g, n_feat), size).reshape(n_feat, N_BINS).astype(np.float64)
    hs = np.bincount(flat, np.repeat(h, n_feat), size).reshape(n_feat, N_BINS).astype(np.float64)
    ns = np.bincount(flat, minlength=size).reshape(n_feat, N_BINS).astype(np.float64)
    return gs, hs, ns


def _best_split(hist: tuple[FloatArray, FloatArray, FloatArray], cols: IntArray) -> tuple[int, int, float]:
    gs, hs, ns = (v.cumsum(axis=1) for v in hist)
    g_tot, h_tot, n_tot = gs[:, -1:], hs[:, -1:], ns[:, -1:]
    gain = gs**2 / (hs + L2) + (g_tot - gs) ** 2 / (h_tot - hs + L2) - g_tot**2 / (h_tot + L2)
    gain[(ns < MIN_LEAF) | (n_tot - ns < MIN_LEAF)] = -np.inf
    f, k = np.unravel_index(int(np.argmax(gain)), gain.shape)
    return int(cols[f]), int(k), float(gain[f, k])


def fit_trees(x: FloatArray, y: IntArray, threshold: float = 0.0) -> FallModel:
    """Gradient-boosted depth-2 trees (logistic loss, classes weighted equally)."""
    rng = np.random.default_rng(0)
    edges = [np.unique(np.quantile(x[:, f], np.linspace(0, 1, N_BINS + 1)[1:-1])) for f in range(x.shape[1])]
    xb = np.column_stack([np.searchsorted(e, x[:, f], side="left") for f, e in enumerate(edges)])
    n_feat = x.shape[1]
    w = np.where(y == 1, (y == 0).sum() / max(1, (y == 1).sum()), 1.0)
    prior = float(np.average(y, weights=w))
    base = float(np.log(prior / (1 - prior)))
    score = np.full(len(y), base)
    feats, splits, leaves = [], [], []
    for _ in range(ROUNDS):
        if COLSAMPLE < 1:
            cols = np.sort(rng.choice(n_feat, max(1, int(COLSAMPLE * n_feat)), replace=False))
            sub = xb[:, cols]
        else:
            cols, sub = np.arange(n_feat), xb
        p = 1 / (1 + np.exp(-score))
        g, h = w * (p - y), w * p * (1 - p)
        node_f, node_s = [0, 0, 0], [np.inf, np.inf, np.inf]
        hist = _histograms(sub, g, h)
        f0, k0, _ = _best_split(hist, cols)
        right = xb[:, f0] > k0
        node_f[0], node_s[0] = f0, float(edges[f0][k0]) if k0 < len(edges[f0]) else np.inf
        if DEPTH > 1:
            # The smaller child is counted; the larger is the parent minus it.
            small_right = right.sum() * 2 < len(right)
            small = right if small_right else ~right
            h_small = _histograms(sub[small], g[small], h[small])
            h_big = (hist[0] - h_small[0], hist[1] - h_small[1], hist[2] - h_small[2])
            children = ((1, h_big), (2, h_small)) if small_right else ((1, h_small), (2, h_big))
            for child, hc in children:
                fc, kc, gain = _best_split(hc, cols)
                if np.isfinite(gain) and gain > 0 and kc < len(edges[fc]):
                    node_f[child], node_s[child] = fc, float(edges[fc][kc])
        second = np.where(right, x[:, node_f[2]] > node_s[2], x[:, node_f[1]] > node_s[1])
        right = x[:, node_f[0]] > node_s[0]
        leaf_of = 2 * right + second
        vals = np.array(
            [-g[leaf_of == k].sum() / (h[leaf_of == k].sum() + L2) * LEARNING_RATE for k in range(4)]
        )
        score += vals[leaf_of]
        feats.append(node_f)
        splits.append(node_s)
        leaves.append(vals)
    return FallModel(base, np.array(feats, dtype=np.int64), np.array(splits), np.array(leaves), threshold)


def _bag_max(scores: FloatArray, bag: IntArray) -> FloatArray:
    order = np.argsort(bag, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(bag[order]) != 0])
    return np.maximum.reduceat(scores[order], starts)


def fit_mil(x: FloatArray, fall: IntArray, bag: IntArray) -> FallModel:
    """Trees where each fall trial contributes its most fall-like candidate as the positive.

    Which impact of a fall trial is the fall is not labelled: start from the hardest impact, then
    re-pick the best-scoring candidate of each fall trial and refit (multiple-instance learning).
    """
    pick = x[:, 0].copy()
    model = None
    for _ in range(1 + MIL_ROUNDS):
        y = np.where(fall == 1, -1, 0)
        idx = np.flatnonzero(fall == 1)
        order = idx[np.lexsort((-pick[idx], bag[idx]))]
        first = np.r_[True, np.diff(bag[order]) != 0]
        y[order[first]] = 1
        use = y >= 0
        model = fit_trees(x[use], y[use])
        pick = model.score(x)
    assert model is not None
    return model


def fit_model(x: FloatArray, fall: IntArray, bag: IntArray, groups: IntArray) -> FallModel:
    """Model on all rows; threshold from subject-grouped inner folds to reach TARGET_SENSITIVITY."""
    subjects = np.unique(groups)
    folds = min(INNER_FOLDS, len(subjects))
    fold = np.searchsorted(subjects, groups) % max(1, folds)
    full = fit_mil(x, fall, bag)
    is_fall = fall == 1
    pos_scores = []
    for k in range(folds if folds >= 2 else 0):
        test = fold == k
        if is_fall[test].any() and is_fall[~test].any():
            inner = fit_mil(x[~test], fall[~test], bag[~test])
            pos_scores.append(_bag_max(inner.score(x[test & is_fall]), bag[test & is_fall]))
    if not pos_scores:
        # Falls of one subject only (quick runs): the in-sample scores are all there is.
        pos_scores = [_bag_max(full.score(x[is_fall]), bag[is_fall])]
    threshold = float(np.quantile(np.concatenate(pos_scores), 1 - TARGET_SENSITIVITY))
    return FallModel(full.base, full.features, full.splits, full.leaves, threshold)


def train(trials: Trials, table: dict[str, FloatArray] | None = None) -> FallModel:
    """Model trained on all given trials plus the synthetic look-alikes."""
    table = table if table is not None else candidate_table(trials)
    extra = look_alike_table()
    bag = table["bag"].astype(np.int64)
    groups = trials.subject[table["trial"].astype(np.int64)]
    return fit_model(
        np.vstack([table["x"], extra["x"]]),
        np.r_[table["fall"].astype(np.int64), extra["fall"]],
        np.r_[bag, extra["bag"] + bag.max() + 1],
        np.r_[groups, np.full(len(extra["bag"]), LOOK_ALIKE_GROUP)],
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Train on the whole dataset and write the model JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", type=Path, help="folder with FallAllD wrist .dat.gz files")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("fall_model.json"))
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="parsed-array cache (outside the repo)")
    args = parser.parse_args(argv)
    try:
        trials = load_fallalld(args.path, args.cache)
    except DatasetMissingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    model = train(trials)
    args.out.write_text(json.dumps(model.to_dict(), indent=None, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({len(model.leaves)} trees over {len(FEATURE_NAMES)} features)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
