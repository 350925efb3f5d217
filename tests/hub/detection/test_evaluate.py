"""Tests for the detector evaluation tool (the dataset runs skip when ../shared/datasets is missing)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from hub.detection import evaluate
from hub.detection.evaluate import alarms, main
from hub.detection.fall_tables import Table

DATASETS = Path(__file__).resolve().parents[3] / "../shared/datasets"


@pytest.fixture
def datasets() -> Path:
    """The shared datasets folder, or a skip when it is absent."""
    if not (DATASETS / "wrist" / "umafall_wrist").is_dir():
        pytest.skip("../shared/datasets/wrist missing: see ../shared/datasets/README.md")
    return DATASETS


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small models: the dataset test checks the report's shape, not its figures."""
    from hub.detection import train_falls

    monkeypatch.setattr(train_falls, "ROUNDS", 20)
    monkeypatch.setattr(train_falls, "ROUND_CHOICES", (10, 20))
    monkeypatch.setattr(train_falls, "LOOK_ALIKES_PER_KIND", 2)
    monkeypatch.setattr(evaluate, "CPU_TRIALS", 3)
    monkeypatch.setattr(evaluate, "SEEN_FOLDS", 2)


@pytest.mark.dataset
def test_falls_report_has_every_row(datasets: Path, quick: None, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    args = ["falls", str(datasets), "--datasets", "umafall_wrist,smartfallmm_watch", "--limit-subjects", "3",
            "--cache", str(tmp_path / "cache")]
    assert main([*args, "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert "model 1/" in captured.err  # progress goes to stderr
    rows = report["rows"]
    for name in ("umafall_wrist", "smartfallmm_watch"):
        mine = [r for r in rows if r["dataset"] == name]
        kinds = {(r["detector"], r["rate"], r["protocol"]) for r in mine}
        for det in ("held out", "seen", "peak>=3g"):
            for rate in ("native", "25 Hz"):
                for protocol in ("recorded", "continued"):
                    assert (det, rate, protocol) in kinds
        for r in mine:
            assert 0 <= r["falls_detected"] <= r["falls"]
            assert 0 <= r["adl_clear"] <= r["adl"]
            assert r["falls"] + r["no_impact"] == report["datasets"][name]["falls"]
            assert (r["target"] in ("met",) or r["target"].startswith("MISSED")) == (r["detector"] == "held out")
        assert set(report["cpu_us_per_sample"][name]) == {"native", "25 Hz"}
    assert main(args) == 0
    text = capsys.readouterr().out
    assert text.startswith("umafall_wrist: 3 subjects")
    assert "CPU per sample" in text
    assert "held out" in text and "peak>=3g" in text


def test_missing_datasets_are_a_friendly_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["falls", str(tmp_path / "nowhere")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["fallalld", str(tmp_path / "nowhere")]) == 2


def test_unknown_dataset_and_command_are_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["falls", str(tmp_path), "--datasets", "nope"])
    assert main(["sideways"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_homes_is_handed_to_the_home_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    fake = types.ModuleType("hub.detection.evaluate_homes")
    fake.main = lambda argv: seen.append(list(argv)) or 7  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hub.detection.evaluate_homes", fake)
    assert main(["homes", "../shared/datasets/homes", "--json"]) == 7
    assert seen == [["../shared/datasets/homes", "--json"]]


def test_alarms_count_one_per_refractory_period() -> None:
    # Candidates of trial 0 at 1, 5 and 12 s, of trial 1 at 3 s; all above the threshold but one.
    tab = Table(x=np.zeros((4, 1), dtype=np.float32), trial=np.array([0, 0, 0, 1]),
                time=np.array([1.0, 5.0, 12.0, 3.0]), fall=np.array([False, False]), peak=np.zeros(2),
                hours=np.ones(2), samples=np.ones(2, dtype=np.int64), naive_alarms=np.zeros(2, dtype=np.int64))
    assert alarms(np.array([1.0, 1.0, 1.0, 0.0]), tab, 0.5, 2).tolist() == [2, 0]
