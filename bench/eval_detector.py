"""Quality of the spike detector on synthetic, realistically messy series.

    .venv/bin/python -m bench.eval_detector [--days 8] [--series-per-level 4] [--no-docs]

Series are 1-minute counts of negative (and total) mentions with US market-hours seasonality
(pre-market ramp, opening surge, midday lull, closing bump), quieter weekends, day-to-day level
drift, negative-binomial overdispersion, chatter bursts that raise total volume with an ordinary
sentiment mix (not incidents), and three volume levels (market-wide, busy ticker, thin ticker).
Incidents of five shapes are injected from day 2 on; day 1 is the detector's learning day.

Two suites: ``standard`` (the series above) and ``hard``, which adds what real mention series
have and the standard one lacks: heavy-tailed noise (negative-binomial k = 1.5, wider day-to-day
drift, a sentiment mix that drifts by about 15 % over half-hours), chatter bursts with Pareto-tailed size (up to x20, up to an
hour), feed gaps (both series 0 for 10-120 min) and one lasting level shift of the whole volume
(x1.5-3, ordinary mix) on day 3-5.

Writes bench/results/detector.json and the quality table in docs/alerting.md.
"""
from __future__ import annotations

import argparse
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.docs_table import publish
from consumers.alerting.config import DetectorConfig
from consumers.alerting.detector import SpikeDetector
from consumers.alerting.shape_detector import ShapeConfig, ShapeDetector

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "detector.json"
DOCS = ROOT / "docs" / "alerting.md"
TABLE_BEGIN, TABLE_END = "<!-- eval-table:begin -->", "<!-- eval-table:end -->"

BUCKET_S = 60
PER_DAY = 86_400 // BUCKET_S
START = 1_704_672_000  # Monday 2024-01-08 00:00 UTC
LEVELS = {"market": 40.0, "ticker": 8.0, "thin": 1.2}  # negative mentions/min at the midday level
BASE_SHARE = 0.3  # ordinary negative share
INCIDENT_SHARE = 0.85  # incident mentions are mostly negative
SHAPES = ("jump", "ramp", "burst", "peak", "low")
MATCH_TAIL = 30  # an alert up to this many buckets after an incident ends still belongs to it
# An incident is "clear" when its injected excess, summed over the incident, is at least CLEAR_Z
# times the series' own noise summed over the same buckets (negative-binomial sd of the ordinary
# negative rate, sqrt(sum(lam + lam^2/5)), chatter excluded) AND it reaches the alert policy's
# volume floor: on average at least CLEAR_MIN_VOLUME expected negative mentions per bucket.
CLEAR_Z = 5.0
CLEAR_MIN_VOLUME = 5.0


def intraday(minute_utc: np.ndarray) -> np.ndarray:
    """Relative intensity over a UTC day, US market hours 13:30-20:00 UTC."""
    h = minute_utc / 60.0
    shape = 0.15 + 0.35 * np.clip((h - 10.0) / 3.5, 0, 1)  # overnight -> pre-market ramp
    in_session = (h >= 13.5) & (h < 20.0)
    u = 0.8 + 0.6 * ((h - 16.75) / 3.25) ** 2  # U-shape over the session
    shape = np.where(in_session, u + 1.5 * np.exp(-(h - 13.5) * 60 / 20.0), shape)  # opening surge
    after = h >= 20.0
    shape = np.where(after, 0.2 + 0.6 * np.exp(-(h - 20.0) * 60 / 45.0), shape)  # close, after-hours
    return shape


@dataclass(frozen=True)
class Realism:
    """How messy a generated series is."""

    dispersion_k: float = 5.0  # negative-binomial k per minute (smaller = heavier tails)
    daily_sigma: float = 0.2  # log-sd of the day-to-day level
    share_sigma: float = 0.0  # log-sd of a slow drift (AR(1), ~30 min memory) of the negative rate alone
    heavy_chatter: bool = False  # Pareto-sized chatter (x2-x20, 5-60 min) instead of x2-4, 5-30 min
    gaps_per_day: float = 0.0  # feed outages: negative and total both 0 for 10-120 min
    level_shift: bool = False  # one lasting x1.5-3 change of the whole volume on day 3-5


SHARE_DRIFT_MINUTES = 30.0


def _ar1(rng: np.random.Generator, n: int, sd: float, memory: float) -> np.ndarray:
    """Stationary AR(1) noise with standard deviation ``sd`` and correlation time ``memory`` steps."""
    phi = math.exp(-1.0 / memory)
    shocks = rng.normal(0.0, sd * math.sqrt(1 - phi * phi), n)
    out = np.empty(n)
    prev = rng.normal(0.0, sd)
    for i in range(n):
        prev = out[i] = phi * prev + shocks[i]
    return out


SUITES = {
    "standard": Realism(),
    "hard": Realism(dispersion_k=1.5, daily_sigma=0.4, share_sigma=0.15, heavy_chatter=True,
                    gaps_per_day=0.5, level_shift=True),
}


@dataclass
class Incident:
    shape: str
    start: int
    end: int
    clarity: float = 0.0  # summed excess / summed noise sd
    clear: bool = False


def make_series(rng: np.random.Generator, level: str, days: int, with_incidents: bool,
                realism: Realism = SUITES["standard"]):
    r = realism
    n = days * PER_DAY
    t = np.arange(n)
    minute = t % PER_DAY
    day = t // PER_DAY
    weekend = (day % 7) >= 5
    daily_level = np.exp(rng.normal(0, r.daily_sigma, days))[day]  # news days differ
    rate = LEVELS[level] * intraday(minute) * np.where(weekend, 0.3, 1.0) * daily_level
    if r.level_shift and days > 3:
        # A ticker joins an index, a feed is added: more of everything, same sentiment mix.
        s = int(rng.integers(3 * PER_DAY, min(days, 6) * PER_DAY))
        rate[s:] *= rng.uniform(1.5, 3.0)
    total_rate = rate / BASE_SHARE
    # Chatter bursts: total volume up with the ordinary sentiment mix.
    chatter = np.ones(n)
    for _ in range(rng.poisson(3 * days)):
        s = int(rng.integers(0, n))
        if r.heavy_chatter:
            chatter[s : s + int(rng.integers(5, 61))] *= min(2.0 * (1.0 + rng.pareto(1.5)), 20.0)
        else:
            chatter[s : s + int(rng.integers(5, 31))] *= rng.uniform(2.0, 4.0)
    extra = np.zeros(n)  # extra (mostly negative) incident mentions per minute
    incidents: list[Incident] = []
    k = r.dispersion_k
    if with_incidents:
        for d in range(1, days):
            shape = SHAPES[(d + int(rng.integers(0, len(SHAPES)))) % len(SHAPES)]
            if level == "thin" and shape != "low":
                shape = "low"
            if shape == "peak":
                s = d * PER_DAY + 13 * 60 + 30 + int(rng.integers(0, 45))
            else:
                s = d * PER_DAY + int(rng.integers(2 * 60, 22 * 60))
            local = max(float(rate[s]), 0.5)
            if shape == "jump":
                dur, prof = 30, np.full(30, 2.0 * local)
            elif shape == "ramp":
                dur = 80
                prof = np.concatenate([np.linspace(0, 3.0 * local, 60), np.full(20, 3.0 * local)])
            elif shape == "burst":
                dur, prof = 4, np.full(4, 4.0 * local)
            elif shape == "peak":
                dur, prof = 20, np.full(20, 1.5 * local)
            else:  # low: a thin series (or a quiet hour) suddenly gets a handful of negative posts
                dur, prof = 20, np.full(20, max(2.0 * local, 6.0))
            e = min(s + dur, n)
            extra[s:e] += prof[: e - s]
            lam = rate[s:e]
            clarity = float(prof[: e - s].sum() / np.sqrt((lam + lam**2 / k).sum()))
            clear = clarity >= CLEAR_Z and float((lam + prof[: e - s]).mean()) >= CLEAR_MIN_VOLUME
            incidents.append(Incident(shape, s, e, round(clarity, 2), clear))
    gamma = rng.gamma(k, 1 / k, n)  # negative-binomial overdispersion
    share_noise = np.exp(_ar1(rng, n, r.share_sigma, SHARE_DRIFT_MINUTES)) if r.share_sigma else 1.0
    lam_neg = rate * chatter * gamma * share_noise + extra
    lam_other = (total_rate - rate) * chatter * gamma + extra * (1 - INCIDENT_SHARE) / INCIDENT_SHARE
    neg = rng.poisson(lam_neg).astype(float)
    total = neg + rng.poisson(lam_other)
    # Feed outages (not over an incident: a gap there would only hide it): nothing arrives.
    busy = np.zeros(n, dtype=bool)
    for inc in incidents:
        busy[max(0, inc.start - 60) : inc.end + MATCH_TAIL] = True
    for _ in range(rng.poisson(r.gaps_per_day * days) if r.gaps_per_day else 0):
        s = int(rng.integers(PER_DAY, n))
        e = min(n, s + int(rng.integers(10, 121)))
        if not busy[s:e].any():
            neg[s:e] = 0.0
            total[s:e] = 0.0
    return START + t * BUCKET_S, neg, total, incidents


def run_detector(config: DetectorConfig, ts, neg, total, use_total: bool, shape: bool = False) -> np.ndarray:
    """Alerts of the live volume detector, or (``shape``) of the shape detector that ``detect`` runs."""
    det = ShapeDetector(ShapeConfig(series_kind="count")) if shape else SpikeDetector(config)
    alerts = np.zeros(len(ts), dtype=bool)
    for i in range(len(ts)):
        alerts[i] = det.update(float(ts[i]), float(neg[i]), float(total[i]) if use_total else None).alert
    return alerts


def score_series(alerts: np.ndarray, incidents: list[Incident]) -> dict:
    n = len(alerts)
    in_incident = np.zeros(n, dtype=bool)
    found = []
    for inc in incidents:
        lo, hi = inc.start, min(n, inc.end + MATCH_TAIL)
        in_incident[lo:hi] = True
        hits = np.flatnonzero(alerts[lo:hi])
        found.append({"shape": inc.shape, "clear": inc.clear, "clarity": inc.clarity,
                      "detected": bool(len(hits)), "delay": int(hits[0]) if len(hits) else None})
    quiet = ~in_incident
    first_day = np.arange(n) < PER_DAY
    return {
        "incidents": found,
        "false_alerts_day1": int((alerts & quiet & first_day).sum()),
        "false_alerts": int((alerts & quiet & ~first_day).sum()),
        "quiet_days": float((quiet & ~first_day).sum() / PER_DAY),
    }


def _score_one(args: tuple) -> dict:
    config, (use_total, shape), (suite, seed, name, (ts, neg, total, incidents)) = args
    r = score_series(run_detector(config, ts, neg, total, use_total, shape), incidents)
    r["suite"], r["series"], r["seed"] = suite, name, seed
    return r


def evaluate(config: DetectorConfig, days: int, per_level: int, seeds: list[int], jobs: int = 2) -> dict:
    """Every mode over the series of every seed, pooled per suite; each seed's headline numbers beside."""
    # mode -> (with the total volume, shape detector): the live alerter (and `marketpulse detect` on
    # a CSV with a total column), the same detector on the negative counts alone, and what `detect`
    # runs on the negative counts alone (the shape detector, on the first seed only: it steps ~10x
    # slower).
    modes = {"total": (True, False), "value_only": (False, False), "detect_shape": (False, True)}
    series = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for level in LEVELS:
            for _ in range(per_level):
                series.append(("standard", seed, level, make_series(rng, level, days, True)))
            series.append(("standard", seed, level + "-quiet", make_series(rng, level, days, False)))
        # The hard suite draws from its own generator, so the standard series stay as they were.
        rng = np.random.default_rng([seed, 1])
        for level in LEVELS:
            for _ in range(max(1, per_level // 2)):
                series.append(("hard", seed, level, make_series(rng, level, days, True, SUITES["hard"])))
            series.append(("hard", seed, level + "-quiet", make_series(rng, level, days, False, SUITES["hard"])))
    out: dict = {suite: {} for suite in SUITES}
    todo = [(mode, s) for mode, (_, shape) in modes.items() for s in series if not shape or s[1] == seeds[0]]
    todo.sort(key=lambda job: not modes[job[0]][1])  # the slow shape runs first, so no worker idles at the end
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        scored = list(pool.map(_score_one, [(config, modes[mode], s) for mode, s in todo]))
    for mode in modes:
        rows = [r for (m, _), r in zip(todo, scored) if m == mode]
        for suite in SUITES:
            mine = [r for r in rows if r["suite"] == suite]
            out[suite][mode] = summarise(mine)
            out[suite][mode]["per_seed"] = {
                str(seed): {k: v for k, v in summarise([r for r in mine if r["seed"] == seed]).items()
                            if k in ("clear_detection_rate", "detection_rate", "false_alerts_per_series_day")}
                for seed in seeds if any(r["seed"] == seed for r in mine)}
    return out


def summarise(rows: list[dict]) -> dict:
    by_shape: dict[str, dict] = {}
    delays_all = []
    for shape in SHAPES:
        incs = [i for r in rows for i in r["incidents"] if i["shape"] == shape]
        delays = [i["delay"] for i in incs if i["detected"]]
        delays_all += delays
        clear = [i for i in incs if i["clear"]]
        by_shape[shape] = {
            "clear_incidents": len(clear),
            "clear_detected": sum(i["detected"] for i in clear),
            "clear_detection_rate": round(sum(i["detected"] for i in clear) / len(clear), 3) if clear else None,
            "incidents": len(incs),
            "detected": sum(i["detected"] for i in incs),
            "detection_rate": round(sum(i["detected"] for i in incs) / len(incs), 3) if incs else None,
            "median_delay_buckets": float(np.median(delays)) if delays else None,
        }
    total_incs = sum(s["incidents"] for s in by_shape.values())
    quiet_days = sum(r["quiet_days"] for r in rows)
    fa = sum(r["false_alerts"] for r in rows)
    per_level: dict[str, dict] = {}
    for r in rows:
        lvl = per_level.setdefault(r["series"], {"false_alerts": 0, "quiet_days": 0.0, "false_alerts_day1": 0})
        lvl["false_alerts"] += r["false_alerts"]
        lvl["quiet_days"] += r["quiet_days"]
        lvl["false_alerts_day1"] += r["false_alerts_day1"]
    for lvl in per_level.values():
        lvl["false_alerts_per_day"] = round(lvl["false_alerts"] / lvl["quiet_days"], 3)
        lvl["quiet_days"] = round(lvl["quiet_days"], 2)
    n_clear = sum(s["clear_incidents"] for s in by_shape.values())
    return {
        "by_shape": by_shape,
        "clear_detection_rate": round(sum(s["clear_detected"] for s in by_shape.values()) / n_clear, 3)
        if n_clear else None,
        "detection_rate": round(sum(s["detected"] for s in by_shape.values()) / total_incs, 3),
        "median_delay_buckets": float(np.median(delays_all)) if delays_all else None,
        "median_delay_minutes": float(np.median(delays_all)) * BUCKET_S / 60 if delays_all else None,
        "false_alerts": fa,
        "quiet_series_days": round(quiet_days, 2),
        "false_alerts_per_series_day": round(fa / quiet_days, 3),
        "false_alerts_learning_day": sum(r["false_alerts_day1"] for r in rows),
        "by_series": per_level,
    }


def suite_tables(modes: dict) -> list[str]:
    lines = [
        "| mode | shape | incidents | detected | rate | clear incidents | clear detected | clear rate "
        "| median delay (buckets = min) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, res in modes.items():
        for shape, s in res["by_shape"].items():
            lines.append(f"| {mode} | {shape} | {s['incidents']} | {s['detected']} | {s['detection_rate']} | "
                         f"{s['clear_incidents']} | {s['clear_detected']} | {s['clear_detection_rate']} | "
                         f"{s['median_delay_buckets']} |")
        shapes = res["by_shape"].values()
        lines.append(f"| {mode} | **all** | {sum(s['incidents'] for s in shapes)} | "
                     f"{sum(s['detected'] for s in shapes)} | **{res['detection_rate']}** | "
                     f"{sum(s['clear_incidents'] for s in shapes)} | {sum(s['clear_detected'] for s in shapes)} | "
                     f"**{res['clear_detection_rate']}** | {res['median_delay_buckets']} |")
    lines += ["", "| mode | false alerts | quiet series-days | false alerts / series-day | "
              "false alerts on the learning day (all series) |", "|---|---:|---:|---:|---:|"]
    for mode, res in modes.items():
        lines.append(f"| {mode} | {res['false_alerts']} | {res['quiet_series_days']} | "
                     f"**{res['false_alerts_per_series_day']}** | {res['false_alerts_learning_day']} |")
    seeds = list(modes["total"]["per_seed"])
    lines += ["", "Per seed (clear detection rate / false alerts per series-day):", "",
              "| mode | " + " | ".join(f"seed {k}" for k in seeds) + " |", "|---|" + "---:|" * len(seeds)]
    for mode, res in modes.items():
        cells = [res["per_seed"].get(k) for k in seeds]
        lines.append(f"| {mode} | " + " | ".join(
            f"{v['clear_detection_rate']} / {v['false_alerts_per_series_day']}" if v else "–" for v in cells) + " |")
    lines += ["", "False alerts per series-day by volume level (after the learning day):", "",
              "| mode | series | false alerts / day |", "|---|---|---:|"]
    for mode, res in modes.items():
        for name, s in res["by_series"].items():
            lines.append(f"| {mode} | {name} | {s['false_alerts_per_day']} |")
    return lines


def markdown(result: dict, command: str) -> str:
    lines = [
        f"Command: `{command}` (seeds {', '.join(map(str, result['seeds']))}, pooled; {result['days']} days "
        f"per series, {result['series']} series in two suites, {result['elapsed_s']} s).",
        "",
        "**Standard suite**",
        "",
    ]
    lines += suite_tables(result["suites"]["standard"])
    lines += ["", "**Hard suite** (heavy tails, Pareto-sized chatter, feed gaps, a lasting level shift)", ""]
    lines += suite_tables(result["suites"]["hard"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=8)
    ap.add_argument("--series-per-level", type=int, default=4)
    ap.add_argument("--seeds", default="7,11,23", help="comma-separated; results are pooled over them")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="series scored in parallel")
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite the table in docs/alerting.md")
    args = ap.parse_args(argv)
    from marketpulse.settings import AlertSettings

    config = DetectorConfig.from_settings(AlertSettings())
    t0 = time.time()
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    suites = evaluate(config, args.days, args.series_per_level, seeds, args.jobs)
    result = {
        "seeds": seeds,
        "days": args.days,
        "series": len(seeds) * len(LEVELS) * (args.series_per_level + 1 + max(1, args.series_per_level // 2) + 1),
        "bucket_s": BUCKET_S,
        "config": config.to_dict(),
        "realism": {name: asdict(r) for name, r in SUITES.items()},
        "suites": suites,
        "elapsed_s": round(time.time() - t0, 1),
    }
    publish(result, RESULTS, markdown(result, "python -m bench.eval_detector"), None if args.no_docs else DOCS,
            TABLE_BEGIN, TABLE_END)
    return result


if __name__ == "__main__":
    main()
