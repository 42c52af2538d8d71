"""Explanation cost and agreement: full occlusion against the screened method, on real texts.

    .venv/bin/python -m bench.bench_explain [--texts 200] [--repeats 3] [--screen 6,8] [--chunk 16]
        [--threads N] [--backend onnx-int8] [--allow-busy] [--out FILE] [--config FILE]

Texts: the dev split of the financial-tweets data (``models.data.artifact_splits`` with the split the
artifact was trained with: the rows training held out, sentiment and topic files both), cleaned as
the stream worker cleans them; of those, the ones the model predicts negative, which are what the
worker's ``model.explain_negative`` and the alerter explain: the first ``--texts`` of them in an order
shuffled with seed 0.

Measured in one run, on the same texts, with the thread pools pinned as bench_models pins them:

* cost: explained texts/s, the texts' probabilities given (the worker and the alerter have them
  already), ``--chunk`` texts per call (a worker batch's negatives, an alert's top events). Median of
  ``--repeats`` timed passes per method, interleaved (order reversed every other repeat) so that a
  slow spell spreads over all methods; a pass during which other processes used more than a quarter
  of the cores is timed again, twice at most (bench.machine_load; not when the machine was already
  busy at the start, which flags the run anyway). Classification alone is timed alongside, for the
  ratio. Rows and tokens scored per explained text are counted too: they do not depend on the load.
* agreement with full occlusion, by word position: top-1 (the same best word) and top-3 overlap,
  |A∩B| / 3 for the two top-3 lists; when both lists are shorter (a text where fewer than three
  words lower P(negative)), divided by the longer one's length, so identical lists agree fully.
  The strict |A∩B| / 3 is reported too.
* the noise floor: full occlusion against itself with the texts in reverse order. int8 activations
  are quantized per forward pass, so a variant scores slightly differently in another batch and
  near-tied words swap places; no method can be expected to agree with occlusion better than that.

Verdict: a candidate qualifies when its top-3 overlap is >= 0.8 and it is faster than occlusion by
more than the spread of the two timings. ``models.explain.DEFAULT_METHOD`` is set from it by hand.
Writes bench/results/explain-<host>.json and prints the table shown in README ("Performance").
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from bench.bench_models import interleaved, machine_info, pin_thread_env, summarize, timed_pass
from bench.machine_load import MAX_LOAD_PER_CORE, MAX_OTHER_CPU_PER_CORE, check_load, usable_cores

ROOT = Path(__file__).resolve().parent.parent
EXIT_BUSY = EXIT_NO_DATA = 2
EXIT_FLAGGED = 3
MIN_OVERLAP = 0.8
REFERENCE, NOISE, CLASSIFY = "occlusion", "occlusion, texts in reverse order", "classification only"


# -- agreement --------------------------------------------------------------------------------------

def top_positions(ranked, k: int = 3) -> list[int]:
    return [i for i, _ in ranked[:k]]


def agreement(reference: list, candidate: list, k: int = 3) -> dict:
    """Top-1 match and top-k overlap of ``candidate`` against ``reference`` (lists of
    ``Attribution.ranked``, one per text), by word position."""
    if len(reference) != len(candidate) or not reference:
        raise ValueError("need the same, non-empty list of texts for both")
    top1, overlap, strict = [], [], []
    for ref, cand in zip(reference, candidate):
        a, b = top_positions(ref, k), top_positions(cand, k)
        top1.append(a[:1] == b[:1])
        shared = len(set(a) & set(b))
        longest = max(len(a), len(b))
        overlap.append(shared / min(k, longest) if longest else 1.0)
        strict.append(shared / k)
    return {"top1": round(statistics.mean(top1), 3), f"top{k}_overlap": round(statistics.mean(overlap), 3),
            f"top{k}_overlap_strict": round(statistics.mean(strict), 3), "texts": len(reference)}


def verdict(methods: dict[str, dict], min_overlap: float = MIN_OVERLAP) -> dict:
    """Which candidates qualify: top-3 overlap >= ``min_overlap`` and faster than occlusion by more
    than the spread (max - min) of either timing. The fastest qualifying one is named ``adopt``."""
    ref = methods[REFERENCE]["speed"]
    out: dict = {"min_overlap": min_overlap, "candidates": {}, "adopt": None}
    best = None
    for name, m in methods.items():
        if name in (REFERENCE, NOISE, CLASSIFY):
            continue
        speed = m["speed"]
        faster = speed["median"] - ref["median"] > max(speed["max"] - speed["min"], ref["max"] - ref["min"])
        agrees = m["agreement"]["top3_overlap"] >= min_overlap
        out["candidates"][name] = {"agrees": agrees, "faster": faster, "qualifies": agrees and faster}
        if agrees and faster and (best is None or speed["median"] > methods[best]["speed"]["median"]):
            best = name
    out["adopt"] = best
    return out


# -- texts ------------------------------------------------------------------------------------------

def trained_splits(data_dir: Path, artifact_dir: Path):
    """(the splits the artifact was trained with, a phrase naming its dev split)."""
    from models.data import artifact_split_config, artifact_splits

    cfg = artifact_split_config(artifact_dir)
    return (artifact_splits(data_dir, artifact_dir),
            f"dev split of {Path(data_dir).name}/ (fraction {cfg['dev_fraction']}, seed {cfg['seed']})")


def dev_texts(data_dir: Path, artifact_dir: Path) -> tuple[list[str], str]:
    from models.io import model_input

    splits, source = trained_splits(data_dir, artifact_dir)
    cleaned = (model_input(e.text) for e in splits.dev_sentiment + splits.dev_topic)
    texts = list(dict.fromkeys(t for t in cleaned if t.strip()))
    return texts, source


def negatives(clf, pool: list[str], n: int, neg: int, step: int = 256) -> tuple[list[str], int]:
    """The first ``n`` texts of ``pool`` (shuffled, seed 0) that ``clf`` predicts negative, and how
    many texts were classified to find them (only as many as needed)."""
    order = random.Random(0).sample(pool, len(pool))
    found: list[str] = []
    seen = 0
    while len(found) < n and seen < len(order):
        chunk = order[seen : seen + step]
        seen += len(chunk)
        found += [t for t, p in zip(chunk, clf.predict_proba(chunk)[0]) if int(p.argmax()) == neg]
    return found[:n], seen


# -- measuring --------------------------------------------------------------------------------------

def chunked(fn: Callable[[list[str]], object], texts: list[str], chunk: int) -> list:
    out: list = []
    for i in range(0, len(texts), chunk):
        out += fn(texts[i : i + chunk])
    return out


def measure_methods(fns: dict[str, Callable[[list[str]], object]], texts: list[str], chunk: int, repeats: int,
                    other_limit: float | None, retries: int = 2, log=print) -> dict[str, dict]:
    """Interleaved timed passes of every method over all texts; name -> summarize() + load fields."""
    cells = {name: (lambda fn=fn: timed_pass(fn, texts, chunk)) for name, fn in fns.items()}
    timed = interleaved(cells, repeats, lambda name: f"{name:36s}", other_limit, retries, log)
    out = {}
    for name, t in timed.items():
        out[name] = summarize(t.runs)
        out[name].update(disturbed=t.retimed, still_disturbed=t.still)
        if t.others:
            out[name]["other_cores_mean"] = round(statistics.mean(t.others), 2)
    return out


class Counting:
    """A probabilities function that counts the rows and tokens it was given."""

    def __init__(self, clf, max_length: int):
        self.clf, self.max_length = clf, max_length
        self.rows = self.tokens = 0

    def __call__(self, texts: list[str]):
        self.rows += len(texts)
        self.tokens += sum(len(ids) for ids in self.clf.tokenizer(texts, truncation=True,
                                                                  max_length=self.max_length)["input_ids"])
        return self.clf.predict_proba(texts)[0]


# -- output -----------------------------------------------------------------------------------------

def markdown(res: dict) -> str:
    m, load = res["machine"], res["load"]
    lines = []
    if res["busy"]:
        lines += ["**Busy machine: the speeds are not representative** (rows and tokens per text are). "
                  + " ".join(res["busy_reasons"]), ""]
    lines.append(
        f"{res['texts']['count']} texts predicted negative, {res['texts']['mean_words']:.1f} words on average, from "
        f"the {res['texts']['source']}; backend {res['backend']}, {res['threads']} threads, {res['chunk']} texts per "
        f"call, median of {res['repeats']} passes (min–max). {m['cpu']}, {m['cores']} cores, 1-min load "
        f"{load['loadavg_at_start'][0]:.2f} at start. Date: {res['date'][:10]}. Command: `{res['command']}`.")
    lines += ["", "| method | texts/s | vs occlusion | rows (tokens) scored per text | top-1 match | top-3 overlap |",
              "|---|---|---|---|---|---|"]
    ref = res["methods"][REFERENCE]["speed"]["median"]
    for name, r in res["methods"].items():
        sp = r.get("speed")
        speed = f"{sp['median']:.1f} ({sp['min']:.1f}–{sp['max']:.1f})" if sp else "-"
        ratio = f"×{sp['median'] / ref:.2f}" if sp else "-"
        cost = f"{r['rows_per_text']:.1f} ({r['tokens_per_text']:.0f})" if "rows_per_text" in r else "-"
        ag = r.get("agreement")
        lines.append(f"| {name} | {speed} | {ratio} | {cost} | " + (f"{ag['top1']:.3f} | {ag['top3_overlap']:.3f} |"
                                                                    if ag else "- | - |"))
    v = res["verdict"]
    lines.append("")
    lines.append("Top-3 overlap strict (|A∩B| / 3 even when fewer than three words explain): "
                 + ", ".join(f"{n} {r['agreement']['top3_overlap_strict']:.3f}" for n, r in res["methods"].items()
                             if r.get("agreement")) + ".")
    lines.append(f"Verdict (top-3 overlap >= {v['min_overlap']} and faster beyond the spread): "
                 + (f"adopt {v['adopt']}." if v["adopt"] else "no candidate qualifies; occlusion stays the default."))
    return "\n".join(lines)


def command_line(argv: list[str]) -> str:
    return " ".join([".venv/bin/python -m bench.bench_explain", *argv]).strip()


def default_out(host: str) -> Path:
    return ROOT / "bench" / "results" / f"explain-{re.sub(r'[^A-Za-z0-9_.-]', '_', host) or 'cpu'}.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="explanation cost and agreement: occlusion vs screened (CPU)")
    ap.add_argument("--config", type=Path, default=None, help="settings file (model paths, data_dir)")
    ap.add_argument("--texts", type=int, default=200, help="negative texts to explain (default 200)")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes per method (default 3)")
    ap.add_argument("--screen", default="6,8", help="screened method: words kept per long text, comma-separated")
    ap.add_argument("--chunk", type=int, default=16, help="texts per explain call (default 16)")
    ap.add_argument("--threads", type=int, default=None, help="model threads (default: the usable cores)")
    ap.add_argument("--backend", default="onnx-int8", help="model backend (default onnx-int8, the worker's on CPU)")
    ap.add_argument("--allow-busy", action="store_true", help="run even on a busy machine (results flagged)")
    ap.add_argument("--out", type=Path, default=None, help="results JSON (default bench/results/explain-<host>.json)")
    args = ap.parse_args(argv)
    try:
        args.screen = sorted({int(x) for x in args.screen.split(",") if x.strip()})
    except ValueError:
        ap.error("--screen: comma-separated integers")
    if not args.screen or min(args.screen) < 1:
        ap.error("--screen: positive integers")
    for name in ("texts", "repeats", "chunk"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be >= 1")
    return args


def main(argv: list[str] | None = None, loadavg: Callable[[], tuple[float, float, float]] = os.getloadavg) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    cores = usable_cores()
    threads = args.threads or cores
    start = check_load(cores, loadavg)  # before anything loads: a refused run costs nothing
    if start.busy and not args.allow_busy:
        print(start.refusal("bench_explain", "--allow-busy"), file=sys.stderr)
        return EXIT_BUSY
    env = pin_thread_env(threads)

    from marketpulse.settings import Settings
    from models.classifier import Classifier
    from models.explain import attribute

    ms = (Settings.load(args.config) if args.config else Settings()).model.model_copy(update={"device": "cpu"})
    if not Path(ms.data_dir).is_dir():
        print(f"bench_explain: no data at {ms.data_dir} (model.data_dir); the dev split is needed", file=sys.stderr)
        return EXIT_NO_DATA
    log = lambda s: print(s, flush=True)  # noqa: E731
    clf = Classifier.from_settings(ms, backend=args.backend, threads=threads)
    neg = clf.labels.sentiment.index("negative")
    pool, source = dev_texts(ms.data_dir, ms.artifact_dir)
    texts, seen = negatives(clf, pool, args.texts, neg)
    base = dict(zip(texts, clf.predict_proba(texts)[0][:, neg]))
    log(f"{len(pool)} dev texts; {len(texts)} of the {seen} classified (seed 0 order) predicted negative")

    def explainer(method: str, screen: int = 8, probs_fn=None):
        fn = probs_fn or (lambda v: clf.predict_proba(v)[0])
        return lambda chunk: attribute(chunk, [neg] * len(chunk), [base[t] for t in chunk], fn, method, screen)

    methods = {REFERENCE: ("occlusion", 8), **{f"screened, {n} words": ("screened", n) for n in args.screen}}
    res: dict = {
        "schema": 1, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command_line(argv),
        "machine": machine_info(threads), "threads": threads, "thread_settings": {"env": env},
        "backend": clf.backend, "model_version": clf.model_version, "chunk": args.chunk, "repeats": args.repeats,
        "load": {"loadavg_at_start": [round(x, 2) for x in start.loadavg], "limit_1m": round(start.limit, 2)},
        "texts": {"source": source, "dev_texts": len(pool), "classified": seen, "count": len(texts),
                  "mean_words": round(statistics.mean(len(t.split()) for t in texts), 1), "sample_seed": 0},
        "methods": {},
    }
    # Untimed passes: the attributions compared, the rows and tokens counted, and the warm-up.
    ranked = {}
    for name, (method, n) in methods.items():
        counter = Counting(clf, ms.max_length)
        ranked[name] = [a.ranked for a in chunked(explainer(method, n, counter), texts, args.chunk)]
        res["methods"][name] = {"method": method, **({"screen_words": n} if method == "screened" else {}),
                                "rows_per_text": round(counter.rows / len(texts), 2),
                                "tokens_per_text": round(counter.tokens / len(texts), 1)}
    reverse = [a.ranked for a in chunked(explainer("occlusion"), texts[::-1], args.chunk)][::-1]
    res["methods"][NOISE] = {"agreement": agreement(ranked[REFERENCE], reverse)}
    for name in methods:
        res["methods"][name]["agreement"] = agreement(ranked[REFERENCE], ranked[name])
    res["methods"][CLASSIFY] = {}

    other_limit = MAX_OTHER_CPU_PER_CORE * cores
    fns = {name: explainer(method, n) for name, (method, n) in methods.items()}
    fns[CLASSIFY] = lambda chunk: clf.predict_proba(chunk)
    # On a machine already busy at the start (--allow-busy), timing a disturbed pass again only
    # makes the run longer: it is flagged either way.
    speeds = measure_methods(fns, texts, args.chunk, args.repeats, other_limit, retries=0 if start.busy else 2,
                             log=log)
    for name, s in speeds.items():
        res["methods"][name]["speed"] = s
    res["explain_vs_classify"] = round(speeds[CLASSIFY]["median"] / speeds[REFERENCE]["median"], 1)

    res["load"]["loadavg_at_end"] = [round(x, 2) for x in loadavg()]
    busy_reasons = [f"1-minute load average at start {start.load_1m:.2f} > {start.limit:.2f} "
                    f"({MAX_LOAD_PER_CORE} x {cores} cores)."] if start.busy else []
    others = [s["other_cores_mean"] for s in speeds.values() if "other_cores_mean" in s]
    if others and statistics.mean(others) > other_limit:
        busy_reasons.append(f"Other processes used {statistics.mean(others):.2f} cores on average during the timed "
                            f"passes (> {other_limit:.2f}).")
    hit = [n for n, s in speeds.items() if s.get("still_disturbed")]
    if hit:
        busy_reasons.append(f"Other processes used more than {other_limit:.2f} cores during kept passes of "
                            f"{', '.join(hit)}.")
    res["busy"], res["busy_reasons"] = bool(busy_reasons), busy_reasons
    res["verdict"] = verdict(res["methods"])

    out = args.out or default_out(res["machine"]["host"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n")
    print(markdown(res))
    print(f"wrote {out}")
    if res["busy"] and not args.allow_busy:
        return EXIT_FLAGGED
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
