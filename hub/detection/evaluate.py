"""Measure the detectors: `python -m hub.detection.evaluate falls [ROOT]` or `... homes ...`.

`falls` trains and tests the wrist fall model across the wrist datasets (leave one dataset out, and
subject-wise with every dataset seen); `fallalld [PATH]` is `falls` on FallAllD alone; `homes` runs
hub.detection.evaluate_homes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from hub.detection import train_falls, wrist_data
from hub.detection.fall_tables import DEFAULT_CACHE, IMPACT_G, NAIVE_PEAK_G, PROTOCOLS, Table, prepared, table
from hub.detection.falls import REFRACTORY_S, FallDetector, FallModel
from hub.detection.train_falls import Corpus, load_corpus, training_set
from hub.detection.wrist_data import DATASETS, DatasetMissingError

DEFAULT_ROOT = Path("../shared/datasets")
EVAL_RATES: tuple[float | None, ...] = (None, 25.0)
"""Each trial as recorded (its native rate) and averaged to 25 Hz."""
SEEN_FOLDS = 4
"""Subject-wise figures: subjects of every dataset split into this many groups (grouped k-fold)."""
BATCH_S = 1.0
"""Batch length fed to the streaming detector for the CPU figures, like a wristband's MQTT messages."""
CPU_TRIALS = 60
"""Trials per dataset and rate streamed for the CPU figure (every k-th trial, k fixed by the count)."""
TARGET_SENSITIVITY, TARGET_SPECIFICITY, TARGET_FA_PER_DAY = 0.95, 0.97, 1.0
NO_FALLS = "wisdm_watch"

BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class Row:
    """One line of a dataset's table: a detector at one rate under one protocol."""

    dataset: str
    detector: str
    rate: str
    protocol: str
    falls_detected: int
    falls: int
    adl_clear: int
    adl: int
    no_impact_detected: int
    no_impact: int
    false_alarms: int
    wear_hours: float
    target: str

    @property
    def sensitivity(self) -> float:
        """Share of falls with an impact that raised an alarm."""
        return self.falls_detected / self.falls if self.falls else float("nan")

    @property
    def specificity(self) -> float:
        """Share of ADL trials without any alarm."""
        return self.adl_clear / self.adl if self.adl else float("nan")

    @property
    def fa_per_day(self) -> float:
        """Alarms per 24 h of wear over the ADL trials."""
        return self.false_alarms / self.wear_hours * 24 if self.wear_hours else float("nan")


def _log(msg: str, started: float) -> None:
    print(f"[{time.monotonic() - started:6.0f} s] {msg}", file=sys.stderr, flush=True)


def alarms(scores: NDArray[np.float64], tab: Table, threshold: float, n_trials: int) -> NDArray[np.int64]:
    """Alarms per trial as the streaming detector raises them: one per REFRACTORY_S."""
    out = np.zeros(n_trials, dtype=np.int64)
    hot = np.flatnonzero(scores >= threshold)
    quiet = np.full(n_trials, -np.inf)
    for r in hot[np.lexsort((tab.time[hot], tab.trial[hot]))]:
        i = tab.trial[r]
        if tab.time[r] >= quiet[i]:
            out[i] += 1
            quiet[i] = tab.time[r] + REFRACTORY_S
    return out


def _row(dataset: str, detector: str, rate: str, protocol: str, alarmed: NDArray[np.int64], tab: Table,
         impact: BoolArray, mask: BoolArray, held_out: bool) -> Row:
    fall = tab.fall & mask
    adl = ~tab.fall & mask
    hit = alarmed > 0
    row = Row(dataset, detector, rate, protocol,
              int((hit & fall & impact).sum()), int((fall & impact).sum()),
              int((~hit & adl).sum()), int(adl.sum()),
              int((hit & fall & ~impact).sum()), int((fall & ~impact).sum()),
              int(alarmed[adl].sum()), float(tab.hours[adl].sum()), "")
    if not held_out:
        return row
    missed = []
    if row.falls and row.sensitivity < TARGET_SENSITIVITY:
        missed.append("sens")
    if row.adl and row.specificity < TARGET_SPECIFICITY and dataset != NO_FALLS:
        missed.append("spec")
    if dataset == NO_FALLS and row.fa_per_day > TARGET_FA_PER_DAY:
        missed.append("FA/24h")
    return Row(**{**asdict(row), "target": "MISSED " + "+".join(missed) if missed else "met"})


def seen_folds(corpus: Corpus) -> dict[str, NDArray[np.int64]]:
    """Fold (0..SEEN_FOLDS-1) of every trial: its subject's group, drawn per dataset with a fixed seed."""
    out = {}
    for name, trials in corpus.trials.items():
        subjects = sorted({tr.subject for tr in trials})
        order = np.random.default_rng(train_falls.SEED).permutation(len(subjects))
        fold_of = {subjects[j]: k % SEEN_FOLDS for k, j in enumerate(order)}
        out[name] = np.array([fold_of[tr.subject] for tr in trials], dtype=np.int64)
    return out


def cpu_per_sample(corpus: Corpus, name: str, rate: float | None, model: FallModel) -> float:
    """µs of CPU per input sample, streaming a spread of the dataset's trials in BATCH_S batches."""
    trials = corpus.trials[name]
    step = max(1, len(trials) // CPU_TRIALS)
    cpu, samples = 0.0, 0
    for tr in trials[::step]:
        t, acc = prepared(tr, rate, "recorded")
        cuts = np.searchsorted(t, np.arange(t[0], t[-1] + BATCH_S, BATCH_S)[1:])
        detector = FallDetector(model)
        parts = list(zip(np.split(t, cuts), np.split(acc, cuts), strict=True))
        start = time.process_time()
        for tb, ab in parts:
            detector.push(tb, ab)
        detector.finish()
        cpu += time.process_time() - start
        samples += len(t)
    return cpu / max(1, samples) * 1e6


def _eval_tables(corpus: Corpus, cache: Path | None) -> dict[tuple[str, str, str], Table]:
    """Candidate tables of every dataset at every evaluated rate and protocol."""
    evals: dict[tuple[str, str, str], Table] = {}
    for name in corpus.trials:
        for r in EVAL_RATES:
            for p in PROTOCOLS:
                tab = corpus.tables.get((name, r)) if p == "recorded" else None
                evals[(name, _rate(r), p)] = tab if tab is not None else table(corpus.trials[name], name, r, p, cache)
    return evals


def _outer_splits(corpus: Corpus) -> list[tuple[str, str, dict[str, BoolArray]]]:
    """(kind, label, test trials per dataset) of every outer model: each dataset held out, then the seen folds."""
    outer: list[tuple[str, str, dict[str, BoolArray]]] = []
    if len(corpus.trials) > 1:
        for name in corpus.trials:
            outer.append(("held out", name, {n: np.full(len(t), n == name) for n, t in corpus.trials.items()}))
    folds = seen_folds(corpus)
    for k in range(SEEN_FOLDS):
        outer.append(("seen", f"fold {k + 1}", {n: f == k for n, f in folds.items()}))
    return outer


def _score_outer(model: FallModel, test: dict[str, BoolArray], evals: dict[tuple[str, str, str], Table],
                 into: dict[tuple[str, str, str], NDArray[np.int64]]) -> None:
    """Alarms per held-out trial of one outer model, written into `into`."""
    for (name, r, p), tab in evals.items():
        mask = test[name]
        if not mask.any():
            continue
        rows = tab.rows(mask)
        s = np.full(len(tab.trial), -np.inf)
        if rows.any():
            s[rows] = model.score(tab.x[rows].astype(np.float64))
        got = alarms(s, tab, model.threshold, len(tab.fall))
        acc = into.setdefault((name, r, p), np.zeros(len(tab.fall), dtype=np.int64))
        acc[mask] = got[mask]


def _rows(name: str, scores: dict[str, dict[tuple[str, str, str], NDArray[np.int64]]],
          evals: dict[tuple[str, str, str], Table], impact: BoolArray) -> list[Row]:
    everyone = np.ones(len(impact), dtype=bool)
    rows = []
    for kind in ("held out", "seen"):
        for key in ((name, _rate(r), p) for r in EVAL_RATES for p in PROTOCOLS):
            if key in scores[kind]:
                rows.append(_row(name, kind, key[1], key[2], scores[kind][key], evals[key], impact, everyone,
                                 kind == "held out"))
    for key in ((name, _rate(r), p) for r in EVAL_RATES for p in PROTOCOLS):
        rows.append(_row(name, f"peak>={NAIVE_PEAK_G:g}g", key[1], key[2], evals[key].naive_alarms, evals[key],
                         impact, everyone, False))
    return rows


def run_falls(root: Path, names: Sequence[str], cache: Path | None, limit_subjects: int = 0) -> dict[str, object]:
    """Train every outer model, score every held-out trial; the report as a dict."""
    started = time.monotonic()
    _log(f"reading {', '.join(names)}", started)
    corpus = load_corpus(root, names, cache)
    if limit_subjects:
        for name in list(corpus.trials):
            everyone = sorted({tr.subject for tr in corpus.trials[name]})
            # A spread, not the first few: SmartFallMM lists its 24 ADL-only older adults first.
            subjects = {everyone[k] for k in np.linspace(0, len(everyone) - 1, limit_subjects).round().astype(int)}
            corpus = _restrict(corpus, name, np.array([tr.subject in subjects for tr in corpus.trials[name]]))
    evals = _eval_tables(corpus, cache)
    # Falls "with an impact" are judged on the recording as made, the same for every rate.
    impact = {name: evals[(name, "native", "recorded")].peak >= IMPACT_G for name in corpus.trials}
    outer = _outer_splits(corpus)
    scores: dict[str, dict[tuple[str, str, str], NDArray[np.int64]]] = {"held out": {}, "seen": {}}
    choices = []
    for i, (kind, label, test) in enumerate(outer):
        tag = f"model {i + 1}/{len(outer)} ({kind}: {label})"
        _log(f"{tag}: training", started)
        ts = training_set(corpus, {n: ~m for n, m in test.items()})
        model, choice = train_falls.choose(ts, progress=tag)
        choices.append({"kind": kind, "test": label, "rows": len(ts.x), **asdict(choice)})
        _score_outer(model, test, evals, scores[kind])
    _log("CPU per sample with the shipped model", started)
    shipped = FallModel.load()
    rows = [r for name in corpus.trials for r in _rows(name, scores, evals, impact[name])]
    cpu = {name: {_rate(r): cpu_per_sample(corpus, name, r, shipped) for r in EVAL_RATES} for name in corpus.trials}
    _log("done", started)
    return {
        "datasets": {name: _describe(corpus, name, impact[name]) for name in corpus.trials},
        "validation": {"held out": "leave one dataset out (trained and tuned on the others)",
                       "seen": f"subject-wise grouped {SEEN_FOLDS}-fold over all datasets at once",
                       "inner": f"subject-grouped {train_falls.INNER_FOLDS}-fold inside each training set"},
        "models": choices,
        "rows": [{**asdict(r), "sensitivity": r.sensitivity, "specificity": r.specificity,
                  "fa_per_24h": r.fa_per_day} for r in rows],
        "cpu_us_per_sample": cpu,
        "wall_s": round(time.monotonic() - started),
    }


def _rate(r: float | None) -> str:
    return "native" if r is None else f"{r:g} Hz"


def _restrict(corpus: Corpus, name: str, keep: BoolArray) -> Corpus:
    """The corpus with only the kept trials of one dataset (quick runs)."""
    idx = np.flatnonzero(keep)
    remap = np.full(len(keep), -1, dtype=np.int64)
    remap[idx] = np.arange(len(idx))
    tables = dict(corpus.tables)
    for (n, r), tab in corpus.tables.items():
        if n != name:
            continue
        rows = keep[tab.trial]
        tables[(n, r)] = Table(tab.x[rows], remap[tab.trial[rows]], tab.time[rows], tab.fall[idx], tab.peak[idx],
                               tab.hours[idx], tab.samples[idx], tab.naive_alarms[idx])
    trials = dict(corpus.trials)
    trials[name] = [corpus.trials[name][i] for i in idx]
    return Corpus(trials, tables)


def _describe(corpus: Corpus, name: str, impact: BoolArray) -> dict[str, object]:
    trials = corpus.trials[name]
    fall = np.array([tr.fall for tr in trials])
    return {"subjects": len({tr.subject for tr in trials}), "trials": len(trials), "falls": int(fall.sum()),
            "falls_without_impact": int((fall & ~impact).sum()), "adl": int((~fall).sum()),
            "native_hz": round(wrist_data.native_hz(trials), 1),
            "wear_hours": round(sum(wrist_data.wear_hours(tr.t) for tr in trials), 2)}


def _pct(num: int, den: int) -> str:
    return f"{100 * num / den:5.1f}% ({num:>3}/{den:>3})" if den else f"{'-':>17}"


def format_tables(report: dict[str, object]) -> str:
    """The report as one text table per dataset."""
    out = []
    datasets: dict[str, dict[str, object]] = report["datasets"]  # type: ignore[assignment]
    rows: list[dict[str, object]] = report["rows"]  # type: ignore[assignment]
    cpu: dict[str, dict[str, float]] = report["cpu_us_per_sample"]  # type: ignore[assignment]
    for name, d in datasets.items():
        out.append(f"{name}: {d['subjects']} subjects, {d['trials']} trials ({d['falls']} falls, "
                   f"{d['falls_without_impact']} of them without an impact (peak < {IMPACT_G:g} g); "
                   f"{d['adl']} ADL), native {d['native_hz']} Hz, {d['wear_hours']} h of samples")
        out.append(f"  {'detector':<10} {'rate':<7} {'protocol':<10} {'sensitivity (impact)':>21} "
                   f"{'specificity':>19} {'no-impact falls':>16} {'FA/24h':>7}  target")
        for r in rows:
            if r["dataset"] != name:
                continue
            fa = f"{r['fa_per_24h']:7.1f}" if r["wear_hours"] else f"{'-':>7}"
            noimp = f"{r['no_impact_detected']}/{r['no_impact']}" if r["no_impact"] else "-"
            out.append(f"  {r['detector']:<10} {r['rate']:<7} {r['protocol']:<10} "
                       f"{_pct(r['falls_detected'], r['falls']):>21} "  # type: ignore[arg-type]
                       f"{_pct(r['adl_clear'], r['adl']):>19} {noimp:>16} {fa}  "  # type: ignore[arg-type]
                       f"{r['target'] or '-'}")
        c = cpu.get(name, {})
        out.append("  CPU per sample (shipped model, 1 s batches): "
                   + ", ".join(f"{k} {v:.2f} µs" for k, v in c.items()))
        out.append("")
    out.append("held out = leave one dataset out (trained and tuned without it); seen = subject-wise "
               f"grouped {SEEN_FOLDS}-fold with every dataset in training; targets apply to held-out rows: "
               f"sensitivity >= {100 * TARGET_SENSITIVITY:g}% of falls with an impact, specificity >= "
               f"{100 * TARGET_SPECIFICITY:g}%, {NO_FALLS} <= {TARGET_FA_PER_DAY:g} false alarm per 24 h.")
    return "\n".join(out)


def _falls_main(argv: Sequence[str], only: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m hub.detection.evaluate {'fallalld' if only else 'falls'}",
                                     description=__doc__)
    parser.add_argument("root", nargs="?", type=Path, default=None,
                        help="datasets folder (default ../shared/datasets"
                             + ("; or the fallalld_wrist folder itself)" if only else ")"))
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated wrist datasets")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="candidate cache (outside the repo)")
    parser.add_argument("--limit-subjects", type=int, default=0,
                        help="only N subjects of each dataset, spread over its list (quick runs)")
    args = parser.parse_args(argv)
    root = args.root if args.root is not None else DEFAULT_ROOT
    if only is not None and root.name == only:
        root = root.parent
    names = [only] if only else [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        parser.error(f"unknown datasets {unknown}; known: {', '.join(DATASETS)}")
    missing = [str(wrist_data.folder(root, n)) for n in names if not wrist_data.folder(root, n).is_dir()]
    if missing:
        print(f"error: dataset folder {', '.join(missing)} not found; pass the datasets folder, e.g. "
              f"python -m hub.detection.evaluate falls ../shared/datasets", file=sys.stderr)
        return 2
    try:
        report = run_falls(root, names, args.cache, args.limit_subjects)
    except DatasetMissingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report) if args.json else format_tables(report))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: the first argument picks falls, fallalld or homes."""
    args = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: python -m hub.detection.evaluate {falls,fallalld,homes} [options]"
    if not args or args[0] in ("-h", "--help"):
        print(usage + "\n\n" + (__doc__ or ""), file=sys.stderr if not args else sys.stdout)
        return 2 if not args else 0
    command, rest = args[0], args[1:]
    if command == "falls":
        return _falls_main(rest)
    if command == "fallalld":
        return _falls_main(rest, only="fallalld_wrist")
    if command == "homes":
        homes = importlib.import_module("hub.detection.evaluate_homes")  # the home detector's own tool
        return int(homes.main(rest))
    print(f"{usage}\nerror: unknown command {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
