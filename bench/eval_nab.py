"""The detector on real series: the NAB dev corpus, scored with NAB's standard profile.

    .venv/bin/python -m bench.eval_nab [--corpus DIR] [--jobs 2] [--no-docs]

Each file goes through exactly what ``marketpulse detect`` does with its defaults (clean the
export, infer the interval and the series kind, one shape-detector step per row); alerts on
zero-filled buckets count on the next real row. For comparison the live alerter's volume
detector (``SpikeDetector``, default settings, value only) runs on the same cleaned rows.
Writes bench/results/nab-dev.json and the table in docs/alerting.md; prints the table.
"""
from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from bench.docs_table import publish
from bench.nab import NabFile, alerts_at, default_corpus_dir, load_corpus, score_corpus, score_file
from consumers.alerting.config import DetectorConfig
from consumers.alerting.detector import SpikeDetector
from consumers.alerting.series import clean_series, detect_series, read_rows
from consumers.alerting.shape_detector import ShapeConfig
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


def detect_file(root: Path, f: NabFile, config: ShapeConfig | None) -> tuple[np.ndarray, int, float, str]:
    """Alerts over the file's rows, buckets stepped, seconds spent, and the series kind.
    ``config`` None runs the live alerter's volume detector instead of the shape detector."""
    series = clean_series(read_rows(root / f.name))
    t0 = time.perf_counter()
    if config is not None:
        fired = [row.timestamp for row, step in detect_series(series.rows, config.with_(series_kind=series.kind))
                 if step.alert]
    else:
        live = SpikeDetector(DetectorConfig.from_settings(AlertSettings()).with_(bucket_s=series.interval_s))
        fired = [r.timestamp for r in series.rows if live.update(r.timestamp, max(r.value, 0.0)).alert]
    spent = time.perf_counter() - t0
    return alerts_at(f, fired, strict=False), len(series.rows), spent, series.kind


def _one(args: tuple[Path, NabFile, ShapeConfig | None]) -> tuple[str, np.ndarray, int, float, str]:
    root, f, cfg = args
    return (f.name, *detect_file(root, f, cfg))


def evaluate(root: Path | None = None, config: ShapeConfig | None = None, jobs: int = 2) -> dict:
    """Scores of ``config`` (the shape detector; None: the live volume detector) on the corpus."""
    root = root or default_corpus_dir()
    files = load_corpus(root)
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        done = list(pool.map(_one, [(root, f, config) for f in files]))
    alerts = {name: a for name, a, *_ in done}
    steps = sum(n for _, _, n, _, _ in done)
    seconds = sum(s for _, _, _, s, _ in done)
    result = score_corpus(files, alerts)
    per_file = []
    for f, (_, a, n, _, kind) in zip(files, done):
        s = score_file(f, a)
        per_file.append({"file": f.name, "kind": kind, "windows": s.tp + s.fn, "detected": s.tp,
                         "false_alerts": s.fp, "raw": round(s.raw, 4)})
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
    lines += ["", f"Shape detector speed: {shape['buckets_per_s_per_key']} buckets/s per key (one core; "
                  f"1-min load average {shape.get('loadavg_1m_at_start', '?')} at the start)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=None, help="NAB dev corpus [../shared/data/nab-dev]")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite the table in docs/alerting.md")
    args = ap.parse_args(argv)
    load = round(os.getloadavg()[0], 2)  # other processes share the cores: speed drops with them
    shape = evaluate(args.corpus, ShapeConfig(), jobs=args.jobs)
    shape["loadavg_1m_at_start"] = load
    live = evaluate(args.corpus, None, jobs=args.jobs)
    result = {"shape": shape, "live_volume_detector": live, "anchors": ANCHORS}
    publish(result, RESULTS, markdown(shape, live, "python -m bench.eval_nab"), None if args.no_docs else DOCS,
            TABLE_BEGIN, TABLE_END, indent=1)
    return result


if __name__ == "__main__":
    main()
