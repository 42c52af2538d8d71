"""Near-duplicate check throughput: ``NoveltyIndex.check_and_add`` at two window sizes.

    .venv/bin/python -m bench.bench_novelty [--quick] [--force]

Inputs are what the worker passes to the index: the generator's stream (headlines, posts, copies,
retweets, templated posts about other tickers) through ``Enricher``, so text, event time and ticker key
are the real ones. Each window is first filled to its size; then the next events are checked on the
full window (every check also evicts the oldest entry), as in a worker that has been up for a while.
Only those checks are timed. Comparisons per check (signature similarity computations) are counted
on a copy of the same filled index, so the count costs the timed run nothing.

A throughput number taken while other processes use the cores says little, so the benchmark refuses
to run when the 1-minute load average is above half the cores, unless ``--force``; the load average
at start is recorded either way. Writes bench/results/novelty.json.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from models.machine import usable_cores

ROOT = Path(__file__).resolve().parent.parent
WINDOWS = (1_000, 50_000)  # 50,000: the worker's default window
QUICK_WINDOWS = (1_000, 10_000)
CHECKS = 5_000
QUICK_CHECKS = 1_000
MAX_LOAD_PER_CORE = 0.5
SEED = 0
RATE = 10.0  # events/s of generated event time: 55,000 events span 1.5 h, inside the 6 h age limit


class _Recorder:
    """Stands in for the index inside Enricher: keeps the exact arguments the worker would pass."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, object, str]] = []

    def check_and_add(self, event_id, text, ts, key=None):
        self.calls.append((event_id, text, ts, key))
        return 100.0, None


def worker_inputs(n: int, seed: int = SEED) -> list[tuple[str, str, object, str]]:
    from stream.enrich.pipeline import EnrichError, Enricher
    from stream.generate import Generator

    rec = _Recorder()
    enricher = Enricher("bench-novelty", rec)  # type: ignore[arg-type]
    for sample in Generator(seed=seed, rate_per_s=RATE, duration_s=n / RATE * 1.2 + 60).samples():
        if len(rec.calls) >= n:
            break
        try:
            enricher.enrich(sample.event)
        except EnrichError:
            pass
    if len(rec.calls) < n:
        raise RuntimeError(f"the generator gave {len(rec.calls)} events, {n} needed")
    return rec.calls[:n]


def measure(window: int, inputs: list, checks: int) -> dict:
    from stream.enrich import novelty
    from stream.enrich.novelty import NoveltyIndex

    idx = NoveltyIndex(window_size=window)
    t0 = time.perf_counter()
    for event_id, text, ts, key in inputs[:window]:
        idx.check_and_add(event_id, text, ts, key=key)
    fill_s = time.perf_counter() - t0
    counted = copy.deepcopy(idx)
    timed = inputs[window : window + checks]

    duplicates = 0
    t0 = time.perf_counter()
    for event_id, text, ts, key in timed:
        duplicates += idx.check_and_add(event_id, text, ts, key=key)[1] is not None
    elapsed = time.perf_counter() - t0

    comparisons = 0
    real = novelty.similarity

    def counting(a, b):
        nonlocal comparisons
        comparisons += 1
        return real(a, b)

    novelty.similarity = counting
    try:
        for event_id, text, ts, key in timed:
            counted.check_and_add(event_id, text, ts, key=key)
    finally:
        novelty.similarity = real
    return {"window": window, "checks": len(timed), "checks_per_s": round(len(timed) / elapsed, 1),
            "us_per_check": round(1e6 * elapsed / len(timed), 1),
            "comparisons_per_check": round(comparisons / len(timed), 2),
            "duplicates_found": duplicates, "fill_s": round(fill_s, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="near-duplicate check throughput benchmark")
    ap.add_argument("--quick", action="store_true", help=f"windows {QUICK_WINDOWS}, {QUICK_CHECKS} checks (smoke run)")
    ap.add_argument("--force", action="store_true", help="run even when the machine is busy (the load is recorded)")
    args = ap.parse_args(argv)

    cores = usable_cores()
    load = os.getloadavg()[0]
    limit = MAX_LOAD_PER_CORE * cores
    if load > limit and not args.force:
        print(f"bench_novelty: refusing to run: 1-minute load average {load:.2f} is above {limit:.1f} "
              f"({MAX_LOAD_PER_CORE} x {cores} cores); other processes would set the numbers. Run it on an "
              "idle machine, or pass --force to run anyway (the load is recorded with the results).",
              file=sys.stderr)
        return 2

    from models.machine import describe

    machine = describe()
    # Other processes share these cores; record how busy they were.
    machine["loadavg_1m_at_start"] = round(load, 2)
    windows, checks = (QUICK_WINDOWS, QUICK_CHECKS) if args.quick else (WINDOWS, CHECKS)
    inputs = worker_inputs(max(windows) + checks)
    res = {"machine": machine, "forced": bool(args.force and load > limit),
           "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "command": ".venv/bin/python -m bench.bench_novelty" + " --quick" * args.quick + " --force" * args.force,
           "inputs": f"stream.generate (seed {SEED}, {RATE:.0f} events/s of event time) through Enricher: "
                     "the worker's text, event time and ticker key",
           "results": []}
    for w in windows:
        row = measure(w, inputs, checks)
        res["results"].append(row)
        print(f"window {w:6d}: {row['checks_per_s']:9.1f} checks/s ({row['us_per_check']} us per check, "
              f"{row['comparisons_per_check']} comparisons per check, {row['duplicates_found']} duplicates "
              f"in {row['checks']} checks)", flush=True)
    res["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    out = ROOT / "bench" / "results" / "novelty.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
