"""The detector on real series: the NAB dev corpus, scored with NAB's standard profile.

    .venv/bin/python -m bench.eval_nab [--corpus DIR] [--jobs 2] [--no-docs] [--allow-busy]

Each file goes through exactly what ``marketpulse detect`` does with its defaults (clean the
export, infer the interval and the series kind, one shape-detector step per row); alerts on
zero-filled buckets count on the next real row. For comparison the live alerter's volume
detector (``SpikeDetector``, default settings, value only) runs on the same cleaned rows.
Writes bench/results/nab-dev.json and the table in docs/alerting.md; prints the table.

The scores do not depend on the machine, the detector's speed (buckets/s per key) does: a busy
machine (1-minute load average above half the cores) is refused before anything runs (exit 2),
unless ``--allow-busy``, which publishes the speed flagged as measured on a busy machine.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from bench.docs_table import publish
from bench.machine_load import check_load
from bench.nab import NabFile, alerts_at, default_corpus_dir, load_corpus, score_corpus, score_file
from consumers.alerting.config import DetectorConfig
from consumers.alerting.detector import SpikeDetector
from consumers.alerting.series import clean_series, detect_series, detector_config, read_rows
from consumers.alerting.shape_detector import Incidents, ShapeConfig
from marketpulse.settings import AlertSettings

# Published detectors, NAB standard profile, scored over exactly these 48 files (their own
# result files); the null detector scores 0 and a perfect one 100.
ANCHORS = {
    "ARTime": 72.1, "Numenta HTM": 70.9, "CAD-OSE": 68.1, "KNN-CAD": 55.5, "Skyline": 53.9,
    "random cut forest": 53.1, "relative entropy": 52.6, "Twitter ADVec": 42.1, "windowed Gaussian": 35.0,
}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "nab-dev.json"
DOCS = ROOT / "docs" / "alerting.md"
TABLE_BEGIN, TABLE_END = "<!-- nab-table:begin -->", "<!-- nab-table:end -->"


# Thresholds around the default at which the same score streams are replayed (sensitivity).
SENSITIVITY_THRESHOLDS = (3.0, 3.25, 3.5, 3.75, 4.0)


@dataclass(frozen=True)
class FileRun:
    alerts: np.ndarray  # bool per row of the NAB file
    buckets: int
    seconds: float
    kind: str
    # Shape detector only: per cleaned row its time, score and whether it could open an incident.
    trace: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def detect_file(root: Path, f: NabFile, config: ShapeConfig | None) -> FileRun:
    """``config`` None runs the live alerter's volume detector instead of the shape detector."""
    series = clean_series(read_rows(root / f.name))
    t0 = time.perf_counter()
    trace = None
    if config is not None:
        steps = [step for _, step in detect_series(series.rows, detector_config(series, shape=config))]
        fired = [s.timestamp for s in steps if s.alert]
        trace = (np.array([s.timestamp for s in steps]), np.array([s.score for s in steps]),
                 np.array([s.can_open for s in steps]))
    else:
        live = SpikeDetector(DetectorConfig.from_settings(AlertSettings(), bucket_s=series.interval_s))
        fired = [r.timestamp for r in series.rows if live.update(r.timestamp, max(r.value, 0.0)).alert]
    spent = time.perf_counter() - t0
    return FileRun(alerts_at(f, fired, strict=False), len(series.rows), spent, series.kind, trace)


def replayed_alerts(f: NabFile, run: FileRun, config: ShapeConfig) -> np.ndarray:
    """The alerts ``config``'s incident rules give on a recorded score stream (scores never
    depend on past alerts, so this equals a fresh run at that threshold)."""
    assert run.trace is not None
    incidents = Incidents.of(config)
    ts, scores, can_open = run.trace
    fired = [t for t, s, c in zip(ts, scores, can_open) if incidents.step(float(t), float(s), bool(c))[0]]
    return alerts_at(f, fired, strict=False)


def _one(args: tuple[Path, NabFile, ShapeConfig | None]) -> FileRun:
    return detect_file(*args)


def evaluate(root: Path | None = None, config: ShapeConfig | None = None, jobs: int = 2) -> dict:
    """Scores of ``config`` (the shape detector; None: the live volume detector) on the corpus."""
    root = root or default_corpus_dir()
    files = load_corpus(root)
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        done = list(pool.map(_one, [(root, f, config) for f in files]))
    steps = sum(r.buckets for r in done)
    seconds = sum(r.seconds for r in done)
    result = score_corpus(files, {f.name: r.alerts for f, r in zip(files, done)})
    per_file = []
    for f, r in zip(files, done):
        s = score_file(f, r.alerts)
        per_file.append({"file": f.name, "kind": r.kind, "windows": s.tp + s.fn, "detected": s.tp,
                         "false_alerts": s.fp, "raw": round(s.raw, 4)})
    sensitivity = []
    if config is not None:
        for threshold in SENSITIVITY_THRESHOLDS:
            other = config.with_(threshold=threshold)
            o = score_corpus(files, {f.name: replayed_alerts(f, r, other) for f, r in zip(files, done)})
            sensitivity.append({"threshold": threshold, "score": round(o.normalized, 1),
                                "detected": o.overall.tp, "false_alerts": o.overall.fp})
    cats = {c: {"score": None if g.normalized is None else round(g.normalized, 1), "windows": g.windows,
                "detected": g.tp, "false_alerts": g.fp,
                "false_alerts_per_day": _r(g.false_alerts_per_day)}
            for c, g in result.categories.items()}
    o = result.overall
    return {
        "corpus": str(root),
        "score": round(result.normalized, 1),
        "windows": o.windows, "detected": o.tp, "false_alerts": o.fp,
        "false_alerts_per_day": _r(o.false_alerts_per_day),
        "categories": cats,
        "files": per_file,
        "threshold_sensitivity": sensitivity,
        "buckets_per_s_per_key": round(steps / seconds, 1) if seconds else None,
        "config": config.to_dict() if config is not None else "live volume detector (SpikeDetector), default settings",
    }


def markdown(shape: dict, live: dict, command: str) -> str:
    cats = list(shape["categories"])
    lines = [f"Command: `{command}`; NAB standard profile on the dev corpus ({len(shape['files'])} files, "
             f"{shape['windows']} labelled windows); null detector = 0, perfect = 100. Real series except the "
             "two artificial categories.", "",
             "| detector | score | windows detected | false alerts | false alerts / series-day | " +
             " | ".join(cats) + " |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(cats)]

    def row(name: str, r: dict) -> str:
        per = [("n/a, " + str(c["false_alerts"]) + " FA") if c["score"] is None else str(c["score"])
               for c in r["categories"].values()]
        return (f"| {name} | **{r['score']}** | {r['detected']}/{r['windows']} | {r['false_alerts']} | "
                f"{r['false_alerts_per_day']} | " + " | ".join(per) + " |")

    lines.append(row("shape detector (`marketpulse detect`, defaults)", shape))
    lines.append(row("live volume detector (value only)", live))
    for name, score in ANCHORS.items():
        lines.append(f"| {name} (published) | {score} | | | | " + " | ".join("" for _ in cats) + " |")
    sens = shape.get("threshold_sensitivity") or []
    if sens:
        lines += ["", "The same score streams replayed at neighbouring thresholds (the default is "
                      f"{shape['config']['threshold']}): how much the score depends on where the line is drawn.", "",
                  "| threshold | " + " | ".join(str(s["threshold"]) for s in sens) + " |",
                  "|---|" + "---:|" * len(sens),
                  "| score | " + " | ".join(str(s["score"]) for s in sens) + " |",
                  "| windows detected | " + " | ".join(str(s["detected"]) for s in sens) + " |",
                  "| false alerts | " + " | ".join(str(s["false_alerts"]) for s in sens) + " |"]
    busy = " **busy machine: the speed is not comparable**" if shape.get("busy") else ""
    lines += ["", f"Shape detector speed: {shape['buckets_per_s_per_key']} buckets/s per key (one core; "
                  f"1-min load average {shape.get('loadavg_1m_at_start', '?')} at the start).{busy}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None,
         loadavg: Callable[[], tuple[float, float, float]] = os.getloadavg) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=None, help="NAB dev corpus [../shared/data/nab-dev]")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite the table in docs/alerting.md")
    ap.add_argument("--allow-busy", action="store_true", help="run on a busy machine (the speed is flagged)")
    args = ap.parse_args(argv)
    load = check_load(loadavg=loadavg)  # other processes share the cores: speed drops with them
    if load.busy and not args.allow_busy:
        print(load.refusal("eval_nab", "--allow-busy"), file=sys.stderr)
        raise SystemExit(2)
    shape = evaluate(args.corpus, ShapeConfig(), jobs=args.jobs)
    shape["loadavg_1m_at_start"] = round(load.load_1m, 2)
    shape["busy"] = load.busy
    live = evaluate(args.corpus, None, jobs=args.jobs)
    result = {"shape": shape, "live_volume_detector": live, "anchors": ANCHORS}
    publish(result, RESULTS, markdown(shape, live, "python -m bench.eval_nab"), None if args.no_docs else DOCS,
            TABLE_BEGIN, TABLE_END, indent=1)
    return result


if __name__ == "__main__":
    main()
