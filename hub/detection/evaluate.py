"""Measure the wrist fall detector: `python -m hub.detection.evaluate fallalld [PATH]`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hub.detection.falls import FallDetector, FallModel
from hub.detection.train_falls import (
    COUNTS_TO_G,
    DEFAULT_CACHE,
    NATIVE_HZ,
    DatasetMissingError,
    Trials,
    candidate_table,
    load_fallalld,
    resample,
    train,
    trial_offsets,
)

DEFAULT_PATH = Path("../shared/datasets/fallalld_wrist")
BATCH_S = 1.0
"""Batch length fed to the streaming detector, like a wristband's MQTT messages."""
NAIVE_PEAK_G = 3.0


@dataclass(frozen=True)
class Result:
    """Trial-level outcome of one detector at one sample rate."""

    rate_hz: float
    detector: str
    falls_detected: int
    falls: int
    adl_clear: int
    adl: int
    sensitivity: float
    specificity: float
    cpu_us_per_sample: float
    cpu_ms_per_device_s: float


def _result(rate: float, name: str, hit: np.ndarray, fall: np.ndarray, cpu_s: float, samples: int,
            seconds: float) -> Result:
    n_fall, n_adl = int(fall.sum()), int((~fall).sum())
    tp, tn = int((hit & fall).sum()), int((~hit & ~fall).sum())
    return Result(rate, name, tp, n_fall, tn, n_adl, tp / max(1, n_fall), tn / max(1, n_adl),
                  cpu_s / max(1, samples) * 1e6, cpu_s / max(seconds, 1e-9) * 1e3)


def fold_models(trials: Trials) -> dict[int, FallModel]:
    """One model per held-out subject, trained on all the other subjects only."""
    table = candidate_table(trials)
    models = {}
    for subject in np.unique(trials.subject):
        keep = trials.subject != subject
        rows = keep[table["trial"].astype(np.int64)]
        train_table = {k: v[rows] for k, v in table.items()}
        # Trial indices must point into the training subset.
        train_table["trial"] = (np.cumsum(keep) - 1)[train_table["trial"].astype(np.int64)]
        models[int(subject)] = train(trials.subset(keep), train_table)
    return models


def evaluate_rate(trials: Trials, models: dict[int, FallModel], rate: float) -> list[Result]:
    """Stream every trial at `rate` through its fold's detector, plus the naive peak rule."""
    offsets = trial_offsets(len(trials.subject))
    hit = np.zeros(len(trials.subject), dtype=bool)
    naive = np.zeros(len(trials.subject), dtype=bool)
    cpu = 0.0
    samples = 0
    seconds = 0.0
    for i, subject in enumerate(trials.subject):
        t, acc = resample(trials.counts[i], rate, offsets[i])
        detector = FallDetector(models[int(subject)])
        cuts = np.searchsorted(t, np.arange(t[0], t[-1] + BATCH_S, BATCH_S)[1:])
        found: list[float] = []
        start = time.process_time()
        for tb, ab in zip(np.split(t, cuts), np.split(acc, cuts), strict=True):
            found += detector.push(tb, ab)
        cpu += time.process_time() - start
        samples += len(t)
        seconds += len(trials.counts[i]) / NATIVE_HZ
        hit[i] = any(t[0] - 0.1 <= f <= t[-1] + 0.1 for f in found)
        naive[i] = bool(np.linalg.norm(acc, axis=1).max() >= NAIVE_PEAK_G)
    return [
        _result(rate, "fall model", hit, trials.fall, cpu, samples, seconds),
        _result(rate, f"peak>={NAIVE_PEAK_G:g}g", naive, trials.fall, 0.0, samples, seconds),
    ]


def _table(results: Sequence[Result], header: str) -> str:
    lines = [header, f"{'rate':>7}  {'detector':<11} {'sensitivity':>18} {'specificity':>20} "
             f"{'CPU/sample':>11} {'CPU/device-s':>13}"]
    for r in results:
        cpu = (f"{r.cpu_us_per_sample:>8.2f} µs {r.cpu_ms_per_device_s:>10.3f} ms"
               if r.detector == "fall model" else f"{'-':>11} {'-':>13}")
        lines.append(
            f"{r.rate_hz:>4g} Hz  {r.detector:<11} {100 * r.sensitivity:>6.1f}% ({r.falls_detected:>3}/{r.falls:>3})"
            f"   {100 * r.specificity:>6.1f}% ({r.adl_clear:>4}/{r.adl:>4})  {cpu}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m hub.detection.evaluate", description=__doc__)
    parser.add_argument("dataset", choices=["fallalld"], help="which dataset to evaluate on")
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH, help="dataset folder")
    parser.add_argument("--rates", default="238,50,25", help="comma-separated sample rates in Hz")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="parsed-array cache (outside the repo)")
    parser.add_argument("--limit-subjects", type=int, default=0, help="only the first N subjects (quick run)")
    args = parser.parse_args(argv)
    try:
        rates = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        parser.error(f"--rates must be numbers, got {args.rates!r}")
    if not rates or any(not 20 <= r <= NATIVE_HZ for r in rates):
        parser.error(f"--rates must lie between 20 and {NATIVE_HZ:g} Hz")
    if not args.path.is_dir():
        print(f"error: dataset folder {args.path} not found; pass its path, e.g. "
              f"python -m hub.detection.evaluate fallalld ../shared/datasets/fallalld_wrist", file=sys.stderr)
        return 2
    try:
        trials = load_fallalld(args.path, args.cache)
    except DatasetMissingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    subjects = np.unique(trials.subject)
    if args.limit_subjects:
        subjects = subjects[: args.limit_subjects]
        trials = trials.subset(np.isin(trials.subject, subjects))
    if len(subjects) < 2:
        parser.error("cross-validation by subject needs at least 2 subjects")
    started = time.process_time()
    models = fold_models(trials)
    train_cpu = time.process_time() - started
    results = [r for rate in rates for r in evaluate_rate(trials, models, rate)]
    summary = {
        "dataset": "fallalld_wrist",
        "validation": "leave-one-subject-out",
        "subjects": len(subjects),
        "trials": len(trials.subject),
        "falls": int(trials.fall.sum()),
        "adl": int((~trials.fall).sum()),
        "counts_to_g": COUNTS_TO_G,
        "batch_s": BATCH_S,
        "training_cpu_s": round(train_cpu, 1),
        "results": [asdict(r) for r in results],
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(_table(results, f"FallAllD wrist, leave-one-subject-out: {summary['subjects']} subjects, "
                              f"{summary['trials']} trials ({summary['falls']} falls, {summary['adl']} ADL), "
                              f"streamed in {BATCH_S:g} s batches"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
