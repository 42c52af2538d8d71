"""The detector on real series: the NAB dev corpus, scored with NAB's standard profile.

    .venv/bin/python -m bench.eval_nab [--corpus DIR] [--jobs 2]

Each file goes through exactly what ``marketpulse detect`` does with its defaults (clean the
export, infer the interval and the series kind, one detector step per row, default settings);
alerts on zero-filled buckets count on the next real row. Returns the scores overall and per
category, the files' details and the detector's speed (buckets/s per key).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from bench.nab import NabFile, alerts_at, default_corpus_dir, load_corpus, score_corpus, score_file
from consumers.alerting.series import clean_series, detect_series, read_rows
from consumers.alerting.shape_detector import ShapeConfig

# Published detectors, NAB standard profile, scored over exactly these 48 files (their own
# result files); the null detector scores 0 and a perfect one 100.
ANCHORS = {
    "ARTime": 72.1, "Numenta HTM": 70.9, "CAD-OSE": 68.1, "KNN-CAD": 55.5, "Skyline": 53.9,
    "random cut forest": 53.1, "relative entropy": 52.6, "Twitter ADVec": 42.1, "windowed Gaussian": 35.0,
}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def detect_file(root: Path, f: NabFile, config: ShapeConfig) -> tuple[np.ndarray, int, float, str]:
    """Alerts over the file's rows, buckets stepped, seconds spent, and the series kind."""
    series = clean_series(read_rows(root / f.name))
    cfg = config.with_(series_kind=series.kind)
    t0 = time.perf_counter()
    fired = [row.timestamp for row, step in detect_series(series.rows, cfg) if step.alert]
    spent = time.perf_counter() - t0
    return alerts_at(f, fired, strict=False), len(series.rows), spent, series.kind


def _one(args: tuple[Path, NabFile, ShapeConfig]) -> tuple[str, np.ndarray, int, float, str]:
    root, f, cfg = args
    return (f.name, *detect_file(root, f, cfg))


def evaluate(root: Path | None = None, config: ShapeConfig | None = None, jobs: int = 2) -> dict:
    root = root or default_corpus_dir()
    files = load_corpus(root)
    config = config or ShapeConfig()
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
        "config": config.to_dict(),
        "anchors": ANCHORS,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=None, help="NAB dev corpus [../shared/data/nab-dev]")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args(argv)
    res = evaluate(args.corpus, jobs=args.jobs)
    print(json.dumps({k: v for k, v in res.items() if k not in ("files", "config", "anchors")}, indent=1))
    return res


if __name__ == "__main__":
    main()
