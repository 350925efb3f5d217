"""Train the wrist fall model on every wrist dataset: `python -m hub.detection.train_falls [ROOT]`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from hub.detection import look_alikes, wrist_data
from hub.detection.fall_tables import DEFAULT_CACHE, IMPACT_G, Table, table
from hub.detection.falls import FEATURE_NAMES, FallModel, extract_candidates
from hub.detection.wrist_data import DATASETS, DatasetMissingError, WristTrial

TRAIN_RATES: tuple[float | None, ...] = (None, 25.0)
"""Each trial as recorded and averaged to 25 Hz, so the model sees both sharp and blunted peaks."""
ROUNDS, LEARNING_RATE, MIN_LEAF, N_BINS, L2, DEPTH, MIL_ROUNDS = 300, 0.1, 20, 32, 1.0, 2, 1
"""Fixed before any dataset was held out (see docs/detection.md); ROUNDS is the largest size tried."""
ROUND_CHOICES = (100, 200, 300)
"""Model sizes compared in the inner folds; the one with the fewest inner false alarms is kept."""
COLSAMPLE = 0.1
"""Share of the features each tree may split on (drawn per tree with a fixed seed): over a thousand
interval quantiles, mostly redundant, would otherwise make training slow and let one series dominate."""
TARGET_SENSITIVITY = 0.96
"""Share of the inner held-out falls (with an impact) the threshold keeps: the 95% requirement plus a margin."""
INNER_FOLDS = 3
NEGATIVES_PER_TRIAL = 6
"""At most this many candidates of one ADL trial per rate (seeded draw): 3-minute blocks of jogging or
dribbling would otherwise outnumber every fall many times over."""
SEED = 20240601
LOOK_ALIKES_PER_KIND = 100
"""Synthetic claps, knocks and slaps (hub/detection/look_alikes.py) added to every training set as
non-falls: FallAllD has few of them, and a model trained without them alarmed on about one in eight."""
LOOK_ALIKE_RATES = (238.0, 25.0)
LOOK_ALIKE_GROUP = -1
"""Subject group of the synthetic recordings: no real subject, so no fold ever holds them out."""

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class TrainSet:
    """Candidate rows: features, fall-trial flag, bag (trial x rate) and subject group."""

    x: NDArray[np.float32]
    fall: IntArray
    bag: IntArray
    group: IntArray

    def subset(self, keep: NDArray[np.bool_]) -> TrainSet:
        """Rows where keep is true."""
        return TrainSet(self.x[keep], self.fall[keep], self.bag[keep], self.group[keep])

    @staticmethod
    def concat(parts: Sequence[TrainSet]) -> TrainSet:
        """Rows of all parts; bags and groups must already be distinct between parts."""
        return TrainSet(np.vstack([p.x for p in parts]), np.concatenate([p.fall for p in parts]),
                        np.concatenate([p.bag for p in parts]), np.concatenate([p.group for p in parts]))


def rows_of(tab: Table, trials: Sequence[WristTrial], keep: NDArray[np.bool_], bag_base: int,
            group_ids: dict[str, int]) -> TrainSet:
    """Training rows of the kept trials of one table; falls without an impact are left out."""
    usable = keep & ~(tab.fall & (tab.peak < IMPACT_G))
    rows = np.flatnonzero(usable[tab.trial])
    groups = np.array([group_ids.setdefault(trials[i].group, len(group_ids)) for i in tab.trial[rows]],
                      dtype=np.int64)
    return TrainSet(tab.x[rows], tab.fall[tab.trial[rows]].astype(np.int64), bag_base + tab.trial[rows], groups)


@cache
def look_alike_set() -> TrainSet:
    """Candidates of the synthetic look-alikes at LOOK_ALIKE_RATES, every one a non-fall."""
    rng = np.random.default_rng(SEED + 1)
    xs, bags = [], []
    recordings = look_alikes.recordings(LOOK_ALIKES_PER_KIND, SEED)
    for k, hz in enumerate(LOOK_ALIKE_RATES):
        for i, rec in enumerate(recordings):
            t, g = rng.uniform(0, 1) + np.arange(len(rec)) / look_alikes.NATIVE_HZ, rec
            if hz < look_alikes.NATIVE_HZ:
                t, g = wrist_data.resample(t, g, hz)
            _, x = extract_candidates(t, g)
            xs.append(x.astype(np.float32))
            bags += [i * len(LOOK_ALIKE_RATES) + k] * len(x)
    n = len(bags)
    return TrainSet(np.vstack(xs), np.zeros(n, dtype=np.int64), np.array(bags, dtype=np.int64),
                    np.full(n, LOOK_ALIKE_GROUP, dtype=np.int64))


def _histograms(xb: NDArray[np.uint8], cols: IntArray, g: FloatArray, h: FloatArray,
                rows: NDArray[np.bool_] | None = None, counts: FloatArray | None = None
                ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Gradient, hessian and row sums per (feature, bin) of the binned columns `cols` (optionally some rows).

    xb is column-major, so each column is contiguous: one bincount per column beats one over all of them.
    `counts` (rows per feature and bin of all rows, which never change) saves a third of the work.
    """
    n_w = None
    if rows is not None:
        g, h = g * rows, h * rows
        n_w = rows.astype(np.float64)
    gs = np.empty((len(cols), N_BINS))
    hs = np.empty((len(cols), N_BINS))
    ns = np.empty((len(cols), N_BINS)) if counts is None else counts[cols]
    for k, f in enumerate(cols):
        col = xb[:, f]
        gs[k] = np.bincount(col, g, N_BINS)
        hs[k] = np.bincount(col, h, N_BINS)
        if counts is None:
            ns[k] = np.bincount(col, n_w, N_BINS)
    return gs, hs, ns


def _best_split(hist: tuple[FloatArray, FloatArray, FloatArray], cols: IntArray) -> tuple[int, int, float]:
    gs, hs, ns = (v.cumsum(axis=1) for v in hist)
    g_tot, h_tot, n_tot = gs[:, -1:], hs[:, -1:], ns[:, -1:]
    gain = gs**2 / (hs + L2) + (g_tot - gs) ** 2 / (h_tot - hs + L2) - g_tot**2 / (h_tot + L2)
    gain[(ns < MIN_LEAF) | (n_tot - ns < MIN_LEAF)] = -np.inf
    f, k = np.unravel_index(int(np.argmax(gain)), gain.shape)
    return int(cols[f]), int(k), float(gain[f, k])


def fit_trees(x: NDArray[np.floating], y: IntArray, threshold: float = 0.0, rounds: int | None = None) -> FallModel:
    """Gradient-boosted depth-2 trees (logistic loss, classes weighted equally); ROUNDS trees by default."""
    rounds = ROUNDS if rounds is None else rounds
    rng = np.random.default_rng(0)
    x = np.asarray(x, dtype=np.float64)
    edges = [np.unique(np.quantile(x[:, f], np.linspace(0, 1, N_BINS + 1)[1:-1])) for f in range(x.shape[1])]
    xb = np.asfortranarray(
        np.column_stack([np.searchsorted(e, x[:, f], side="left") for f, e in enumerate(edges)]).astype(np.uint8))
    n_feat = x.shape[1]
    counts = np.stack([np.bincount(xb[:, f], minlength=N_BINS) for f in range(n_feat)]).astype(np.float64)
    w = np.where(y == 1, (y == 0).sum() / max(1, (y == 1).sum()), 1.0)
    prior = float(np.clip(np.average(y, weights=w), 1e-6, 1 - 1e-6))
    base = float(np.log(prior / (1 - prior)))
    score = np.full(len(y), base)
    feats, splits, leaves = [], [], []
    for _ in range(rounds):
        cols = (np.sort(rng.choice(n_feat, max(1, int(COLSAMPLE * n_feat)), replace=False)) if COLSAMPLE < 1
                else np.arange(n_feat))
        p = 1 / (1 + np.exp(-score))
        g, h = w * (p - y), w * p * (1 - p)
        node_f, node_s = [0, 0, 0], [np.inf, np.inf, np.inf]
        hist = _histograms(xb, cols, g, h, counts=counts)
        f0, k0, _ = _best_split(hist, cols)
        right = xb[:, f0] > k0
        node_f[0], node_s[0] = f0, float(edges[f0][k0]) if k0 < len(edges[f0]) else np.inf
        if DEPTH > 1:
            # The smaller child is counted; the larger is the parent minus it.
            small_right = right.sum() * 2 < len(right)
            small = right if small_right else ~right
            h_small = _histograms(xb, cols, g, h, small)
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


def truncated(model: FallModel, rounds: int, threshold: float) -> FallModel:
    """The model's first `rounds` trees with another threshold."""
    return FallModel(model.base, model.features[:rounds], model.splits[:rounds], model.leaves[:rounds], threshold)


def staged_scores(model: FallModel, x: NDArray[np.floating], rounds: Sequence[int]) -> FloatArray:
    """Scores after each number of trees in `rounds`: shape (len(rounds), len(x))."""
    f, s = model.features, model.splits
    right = x[:, f[:, 0]] > s[:, 0]
    second = np.where(right, x[:, f[:, 2]] > s[:, 2], x[:, f[:, 1]] > s[:, 1])
    leaf = 2 * right.astype(np.int64) + second
    per_tree = np.take_along_axis(model.leaves[None, :, :], leaf[:, :, None], axis=2)[:, :, 0]
    cum = np.cumsum(per_tree, axis=1)
    return np.stack([model.base + cum[:, r - 1] for r in rounds])


def bag_max(scores: FloatArray, bag: IntArray) -> FloatArray:
    """Highest score of each bag (bags in sorted order)."""
    if not len(scores):
        return np.zeros(0)
    order = np.argsort(bag, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(bag[order]) != 0])
    return np.maximum.reduceat(scores[order], starts)


def _top_per_bag(rank: FloatArray, bag: IntArray, rows: IntArray, k: int) -> IntArray:
    """The (at most) k rows of each bag with the highest rank, among `rows`."""
    order = rows[np.lexsort((-rank[rows], bag[rows]))]
    starts = np.flatnonzero(np.r_[True, np.diff(bag[order]) != 0])
    pos_in_bag = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    return order[pos_in_bag < k]


def fit_mil(ts: TrainSet) -> FallModel:
    """Trees where each fall trial gives its most fall-like candidate and each ADL trial its most fall-like few.

    Which impact of a fall trial is the fall is not labelled: start from the hardest impact, then re-pick
    the best-scoring candidate of each fall trial and refit (multiple-instance learning). An ADL trial
    alarms on its worst candidate, so after a first fit on a seeded draw of NEGATIVES_PER_TRIAL of them,
    its NEGATIVES_PER_TRIAL best-scoring ones are the negatives (hard negatives; long ADL recordings would
    otherwise swamp the falls with easy rows).
    """
    x, fall, bag = ts.x, ts.fall, ts.bag
    pick = x[:, 0].astype(np.float64)
    neg_rank = np.random.default_rng(SEED).random(len(x))
    falls_idx, adl_idx = np.flatnonzero(fall == 1), np.flatnonzero(fall == 0)
    model = None
    for _ in range(1 + MIL_ROUNDS):
        use = np.r_[_top_per_bag(pick, bag, falls_idx, 1), _top_per_bag(neg_rank, bag, adl_idx, NEGATIVES_PER_TRIAL)]
        y = fall[use]
        model = fit_trees(x[use], y)
        # float32 rows compare with the float64 splits exactly as their float64 copies would.
        pick = np.concatenate([model.score(x[k : k + 8192]) for k in range(0, len(x), 8192)])  # type: ignore[arg-type]
        neg_rank = pick
    assert model is not None
    return model


@dataclass(frozen=True)
class Choice:
    """What the inner folds chose: the model size, its threshold and the inner figures behind them."""

    rounds: int
    threshold: float
    inner_sensitivity: float
    inner_false_alarm_rate: float


def choose(ts: TrainSet, progress: str = "") -> tuple[FallModel, Choice]:
    """Model on all rows; its size and threshold from subject-grouped inner folds (INNER_FOLDS)."""
    real = np.unique(ts.group[ts.group != LOOK_ALIKE_GROUP])
    order = np.random.default_rng(SEED).permutation(len(real))
    fold_of = dict(zip(real[order].tolist(), (np.arange(len(real)) % INNER_FOLDS).tolist(), strict=True))
    fold = np.array([fold_of.get(int(g), -1) for g in ts.group])
    pos: list[FloatArray] = []
    neg: list[FloatArray] = []
    for k in range(INNER_FOLDS if len(real) >= INNER_FOLDS else 0):
        test = fold == k
        if not (ts.fall[test] == 1).any() or not (ts.fall[~test] == 1).any():
            continue
        if progress:
            print(f"{time.strftime('%H:%M:%S')} {progress}: inner fold {k + 1}/{INNER_FOLDS}", file=sys.stderr,
                  flush=True)
        inner = fit_mil(ts.subset(~test))
        staged = staged_scores(inner, ts.x[test], ROUND_CHOICES)
        f = ts.fall[test] == 1
        pos.append(np.stack([bag_max(s[f], ts.bag[test][f]) for s in staged]))
        neg.append(np.stack([bag_max(s[~f], ts.bag[test][~f]) for s in staged]) if (~f).any()
                   else np.zeros((len(ROUND_CHOICES), 0)))
    if progress:
        print(f"{time.strftime('%H:%M:%S')} {progress}: final model", file=sys.stderr, flush=True)
    full = fit_mil(ts)
    if not pos:
        # Too few subjects for inner folds (tiny test runs): in-sample scores are all there is.
        f = ts.fall == 1
        staged = staged_scores(full, ts.x, ROUND_CHOICES)
        pos = [np.stack([bag_max(s[f], ts.bag[f]) for s in staged])]
        neg = [np.stack([bag_max(s[~f], ts.bag[~f]) for s in staged])]
    p, n = np.concatenate(pos, axis=1), np.concatenate(neg, axis=1)
    if not p.shape[1]:
        # No fall with an impact to learn from: a model that never alarms, rather than a guess.
        return truncated(full, ROUND_CHOICES[0], float("inf")), Choice(ROUND_CHOICES[0], float("inf"), 0.0, 0.0)
    best: Choice | None = None
    for i, r in enumerate(ROUND_CHOICES):
        thr = float(np.quantile(p[i], 1 - TARGET_SENSITIVITY))
        fa = float(np.mean(n[i] >= thr)) if n.shape[1] else 0.0
        c = Choice(r, thr, float(np.mean(p[i] >= thr)), fa)
        if best is None or c.inner_false_alarm_rate < best.inner_false_alarm_rate:
            best = c
    assert best is not None
    return truncated(full, best.rounds, best.threshold), best


@dataclass(frozen=True)
class Corpus:
    """Trials and training tables of every dataset that could be read."""

    trials: dict[str, list[WristTrial]]
    tables: dict[tuple[str, float | None], Table]


def load_corpus(root: Path, names: Sequence[str] = DATASETS, cache_dir: Path | None = DEFAULT_CACHE,
                rates: Sequence[float | None] = TRAIN_RATES) -> Corpus:
    """Read the datasets and their `recorded` candidate tables at the training rates."""
    trials = {name: wrist_data.load(root, name) for name in names}
    tables = {(name, r): table(trials[name], name, r, "recorded", cache_dir) for name in names for r in rates}
    return Corpus(trials, tables)


def training_set(corpus: Corpus, keep: dict[str, NDArray[np.bool_]], rates: Sequence[float | None] = TRAIN_RATES,
                 with_look_alikes: bool = True) -> TrainSet:
    """Rows of the kept trials of every dataset at every training rate, plus the look-alikes."""
    parts: list[TrainSet] = []
    base, group_ids = 0, dict[str, int]()
    for name, trials in corpus.trials.items():
        if name not in keep or not keep[name].any():
            continue
        for r in rates:
            parts.append(rows_of(corpus.tables[(name, r)], trials, keep[name], base, group_ids))
            base += len(trials)
    if with_look_alikes:
        la = look_alike_set()
        parts.append(TrainSet(la.x, la.fall, la.bag + base, la.group))
    return TrainSet.concat(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Train on every wrist dataset and write the model JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", nargs="?", type=Path, default=Path("../shared/datasets"),
                        help="the datasets folder (holds fallalld_wrist/ and wrist/)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("fall_model.json"))
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="candidate cache (outside the repo)")
    args = parser.parse_args(argv)
    try:
        corpus = load_corpus(args.root, cache_dir=args.cache)
    except DatasetMissingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    keep = {name: np.ones(len(t), dtype=bool) for name, t in corpus.trials.items()}
    model, choice = choose(training_set(corpus, keep), progress="all datasets")
    args.out.write_text(json.dumps(model.to_dict(), indent=None, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({len(model.leaves)} trees over {len(FEATURE_NAMES)} features, threshold "
          f"{choice.threshold:.3f}; inner folds: {100 * choice.inner_sensitivity:.1f}% of falls, "
          f"{100 * choice.inner_false_alarm_rate:.1f}% of ADL trial-rates alarmed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
