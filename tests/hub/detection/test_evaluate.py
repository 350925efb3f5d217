"""Tests for the fall-detector evaluation tool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.detection.evaluate import main

DATASET = Path(__file__).resolve().parents[3] / "../shared/datasets/fallalld_wrist"


@pytest.fixture
def dataset() -> Path:
    """The FallAllD wrist folder, or a skip when it is absent."""
    if not DATASET.is_dir():
        pytest.skip("../shared/datasets/fallalld_wrist missing: see ../shared/datasets/README.md")
    return DATASET


@pytest.mark.dataset
def test_json_report_is_complete(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fallalld", str(dataset), "--limit-subjects", "2", "--rates", "50,25", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["subjects"] == 2
    assert report["validation"] == "leave-one-subject-out"
    assert report["falls"] + report["adl"] == report["trials"] > 0
    results = report["results"]
    assert [(r["rate_hz"], r["detector"]) for r in results] == [
        (50.0, "fall model"), (50.0, "peak>=3g"), (25.0, "fall model"), (25.0, "peak>=3g"),
    ]
    for r in results:
        assert r["falls"] == report["falls"]
        assert r["adl"] == report["adl"]
        assert 0 <= r["falls_detected"] <= r["falls"]
        assert 0 <= r["adl_clear"] <= r["adl"]
        assert r["sensitivity"] == pytest.approx(r["falls_detected"] / r["falls"])
        assert r["specificity"] == pytest.approx(r["adl_clear"] / r["adl"])
        assert r["cpu_us_per_sample"] >= 0
        assert r["cpu_ms_per_device_s"] >= 0


@pytest.mark.dataset
def test_table_report_lists_model_and_baseline(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fallalld", str(dataset), "--limit-subjects", "2", "--rates", "25"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("FallAllD wrist, leave-one-subject-out: 2 subjects")
    assert "sensitivity" in lines[1]
    assert "specificity" in lines[1]
    assert "CPU/sample" in lines[1]
    assert len(lines) == 4
    assert "fall model" in lines[2]
    assert "µs" in lines[2]
    assert "peak>=3g" in lines[3]


def test_missing_dataset_is_a_friendly_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fallalld", str(tmp_path / "nowhere")]) == 2
    assert "not found" in capsys.readouterr().err


def test_empty_folder_is_a_friendly_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fallalld", str(tmp_path), "--cache", str(tmp_path / "cache.npz")]) == 2
    assert "no FallAllD wrist files" in capsys.readouterr().err


def test_bad_rates_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["fallalld", str(tmp_path), "--rates", "5"])
