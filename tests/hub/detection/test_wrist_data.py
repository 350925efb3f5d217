"""Tests for reading the wrist datasets and for the protocols built on them (synthetic folders only)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from hub.detection import wrist_data
from hub.detection.wrist_data import DatasetMissingError, continued, load, peak_g, resample, wear_hours


def _write_dataset(root: Path, name: str) -> None:
    folder = root / "wrist" / name
    (folder / "trials").mkdir(parents=True)
    rows = ["file,subject,activity,is_fall,fall_start_s,fall_end_s"]
    for k, fall in enumerate((True, False)):
        t = np.arange(0, 5, 0.05)
        lines = ["t_s,ax_g,ay_g,az_g"] + [f"{x:.3f},0.0,0.0,{1.0 + k:.5f}" for x in t]
        with gzip.open(folder / "trials" / f"S{k}.csv.gz", "wt") as f:
            f.write("\n".join(lines) + "\n")
        rows.append(f"trials/S{k}.csv.gz,S{k},{'Fall' if fall else 'Walk'},{int(fall)},,")
    (folder / "trials.csv").write_text("\n".join(rows) + "\n")


def test_a_converted_dataset_is_read_with_labels_and_offsets(tmp_path: Path) -> None:
    _write_dataset(tmp_path, "umafall_wrist")
    trials = load(tmp_path, "umafall_wrist")
    assert [(tr.subject, tr.fall) for tr in trials] == [("S0", True), ("S1", False)]
    assert trials[0].group == "umafall_wrist:S0"
    assert trials[1].acc[0].tolist() == [0.0, 0.0, 2.0]
    assert all(1000 <= tr.t[0] <= 1001 and len(tr.t) == 100 for tr in trials)
    assert wrist_data.native_hz(trials) == pytest.approx(20.0)


def test_a_missing_dataset_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetMissingError, match="not found"):
        load(tmp_path, "wisdm_watch")
    (tmp_path / "fallalld_wrist").mkdir()
    with pytest.raises(DatasetMissingError, match="no FallAllD"):
        load(tmp_path, "fallalld_wrist")


def test_resample_averages_each_period_and_stamps_its_end() -> None:
    t = np.arange(0, 1, 0.01)
    acc = np.column_stack([t, np.zeros_like(t), np.ones_like(t)])
    rt, ra = resample(t, acc, 25)
    assert len(rt) == 25
    assert np.allclose(np.diff(rt), 0.04)
    assert rt[0] == pytest.approx(0.04)
    assert ra[0, 0] == pytest.approx(np.mean(t[:4]))


def test_continued_repeats_the_last_second_for_ten_seconds() -> None:
    t = np.arange(0, 5, 0.02)
    acc = np.column_stack([np.sin(t), np.cos(t), t])
    ct, ca = continued(t, acc)
    assert np.all(np.diff(ct) > 0)
    assert ct[-1] == pytest.approx(t[-1] + 10, abs=0.03)
    last = acc[t > t[-1] - 1.0]
    assert np.allclose(ca[len(t) : len(t) + len(last)], last)
    assert np.array_equal(ct[: len(t)], t)


def test_peak_leaves_glitches_out_and_wear_leaves_gaps_out() -> None:
    acc = np.array([[0.0, 0.0, 1.0], [-105.0, 0.0, 0.0], [0.0, 2.5, 0.0]])
    assert peak_g(acc) == pytest.approx(2.5)
    assert wear_hours(np.array([0.0, 0.5, 1.0, 100.0, 100.5])) == pytest.approx(1.5 / 3600)
