"""Tests for training the wrist fall model, on tiny synthetic candidate sets (no dataset needed)."""

from __future__ import annotations

import numpy as np
import pytest

from hub.detection import train_falls
from hub.detection.train_falls import TrainSet, bag_max, choose, fit_trees, staged_scores, truncated


@pytest.fixture(autouse=True)
def small_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Twenty trees instead of hundreds: the tests check the mechanics, not the figures."""
    monkeypatch.setattr(train_falls, "ROUNDS", 20)
    monkeypatch.setattr(train_falls, "ROUND_CHOICES", (10, 20))
    monkeypatch.setattr(train_falls, "MIN_LEAF", 3)
    monkeypatch.setattr(train_falls, "COLSAMPLE", 1.0)


def _synthetic(n_subjects: int = 9, seed: int = 0) -> TrainSet:
    """Fall trials hold one candidate with feature 0 high plus a decoy; ADL trials hold decoys only."""
    rng = np.random.default_rng(seed)
    xs, fall, bag, group = [], [], [], []
    b = 0
    for s in range(n_subjects):
        for k in range(10):
            is_fall = k < 4
            rows = [rng.normal(0, 1, 4)]
            if is_fall:
                rows.append(np.r_[3 + rng.normal(0, 0.3), rng.normal(0, 1, 3)])
            for r in rows:
                xs.append(r)
                fall.append(int(is_fall))
                bag.append(b)
                group.append(s)
            b += 1
    return TrainSet(np.array(xs, dtype=np.float32), np.array(fall), np.array(bag), np.array(group))


def test_staged_scores_end_at_the_model_score() -> None:
    ts = _synthetic()
    model = fit_trees(ts.x, ts.fall)
    staged = staged_scores(model, ts.x, [5, 20])
    assert np.allclose(staged[1], model.score(ts.x.astype(np.float64)))
    assert np.allclose(staged[0], truncated(model, 5, 0.0).score(ts.x.astype(np.float64)))


def test_bag_max_takes_the_highest_score_of_each_bag() -> None:
    assert bag_max(np.array([1.0, 5.0, 2.0, -1.0]), np.array([3, 3, 1, 1])).tolist() == [2.0, 5.0]


def test_choose_finds_the_falling_candidate_and_keeps_most_falls() -> None:
    ts = _synthetic()
    model, choice = choose(ts)
    assert choice.rounds in (10, 20)
    assert len(model.leaves) == choice.rounds
    assert model.threshold == choice.threshold
    test = _synthetic(seed=1)
    scores = model.score(test.x.astype(np.float64))
    per_bag = bag_max(scores, test.bag)
    bag_fall = bag_max(test.fall.astype(np.float64), test.bag) > 0
    assert np.mean(per_bag[bag_fall] >= model.threshold) >= 0.9
    assert np.mean(per_bag[~bag_fall] >= model.threshold) <= 0.1
