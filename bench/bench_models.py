"""Classifier throughput per backend and batch size, against a Hugging Face pipeline baseline.

    .venv/bin/python -m bench.bench_models [--quick] [--threads N] [--repeats 5] [--allow-busy]
        [--backends hf-pipeline,torch,onnx,onnx-int8] [--batch-sizes 1,8,32,64,128] [--texts 256]
        [--out FILE] [--docs FILE | --no-docs] [--config FILE]

What is measured: texts/s through ``Classifier.predict`` (tokenization, both heads, softmax,
Prediction objects); batch N = N texts per ``predict`` call, split inside into length-sorted forward
passes of at most ``Classifier``'s default 32 rows, as the stream worker calls it. The baseline is
what users write first: a transformers ``pipeline("text-classification")`` on the same base encoder
(from the installed base-weights package, never the Hub), one text per call. It has one (untrained)
head where ours computes two, so it does less work per text than our rows.

How it is kept honest:

* Same texts for every cell: ``--texts`` tweets sampled once (seed 0) from the shared
  financial-tweets files (real lengths), else the built-in fallback headlines. Every timed pass
  classifies all of them, so every cell does the same work.
* Threads: torch intra-op threads and the ONNX backends' threads (forward passes side by side,
  one thread each) are set to ``--threads`` (default: the usable cores); the tokenizer's own
  thread pool is switched off (``TOKENIZERS_PARALLELISM=false``), as are OpenMP/BLAS pools beyond ``--threads``, so no two pools
  compete for the cores. ONNX backends run before torch is imported, so torch's OpenMP pool does
  not exist while they are timed.
* Each backend is warmed up on every batch size, then timed ``--repeats`` times; repeats are
  interleaved across batch sizes (order reversed every other repeat) so that a slow spell of the
  machine spreads over all cells instead of sinking one. Reported: median, min/max and IQR.
* The 1-minute load average is checked before anything loads: above 0.5 x cores the run refuses to
  start (exit 2) unless ``--allow-busy``. The CPU used by other processes during each timed pass is
  measured too (``bench.machine_load.CpuMeter``): a pass during which they used more than a quarter
  of the cores is timed again (twice at most); a kept pass still above that, or such an average over
  the run, flags the run busy.
* Physics check: per padded row, a batch of 32 or more is never slower than one row at a time, so
  when a backend's batch-1 median beats a batch >= 32 (scaled by that batch's padding overhead,
  padded / real tokens) by more than the spread of either cell, something else ran (other load,
  oversubscribed threads) and the run is flagged inconsistent. Per text, batch 1 can win honestly:
  32 random tweets in one pass pad to the longest (about 1.8x the real tokens here); that case is
  reported as a note with the padding overhead per batch size.

A flagged run (busy or inconsistent) still writes the JSON, marked, but leaves docs/models.md alone
and exits 3, unless ``--allow-busy`` (then the table carries the flag too, exit 0).
Writes bench/results/models-<host>.json and the table between the bench markers of docs/models.md.
"""
from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import platform
import random
import re
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from bench.machine_load import MAX_LOAD_PER_CORE, MAX_OTHER_CPU_PER_CORE, CpuMeter, check_load, usable_cores

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "models.md"
MARK_START, MARK_END = "<!-- bench:start -->", "<!-- bench:end -->"
BATCH_SIZES = (1, 8, 32, 64, 128)
BACKENDS = ("hf-pipeline", "torch", "onnx", "onnx-int8", "tensorrt")
DEFAULT_BACKENDS = ("hf-pipeline", "torch", "onnx", "onnx-int8")
BASELINE = "hf-pipeline"
# ONNX first: they never import torch, so torch's OpenMP pool is not alive while they are timed.
RUN_ORDER = ("onnx-int8", "onnx", "torch", "hf-pipeline", "tensorrt")
DEFAULT_TEXTS, QUICK_TEXTS = 256, 128
DEFAULT_REPEATS = 5
EXIT_BUSY, EXIT_FLAGGED = 2, 3
# Fallback when the data directory is absent: short financial headlines of typical tweet length.
FALLBACK_TEXTS = [
    "Fed raises rates by 75 basis points, signals more hikes ahead",
    "$AAPL beats earnings estimates as iPhone sales surge https://t.co/x",
    "Tesla shares plunge 12% after disappointing deliveries",
    "Oil prices jump as OPEC+ agrees to deeper output cuts",
    "Goldman Sachs to cut 3,200 jobs amid dealmaking slump",
    "Treasury yields hit 15-year high as inflation stays sticky",
    "Pfizer to acquire Seagen in $43 billion deal",
    "Stocks close mixed as investors await jobs report",
    "Morgan Stanley downgrades Netflix to underweight, cuts price target",
    "China's factory activity contracts for third straight month, weighing on commodity prices",
]


def load_texts(data_dir: Path, n: int, seed: int = 0) -> tuple[list[str], str]:
    """``n`` random tweets as the model stage sees them: cleaned as the worker and ``classify`` clean
    them (``models.io.model_input``: markup, entities and URLs out; 38 -> 24 tokens on average), since
    ``Classifier.predict`` takes prepared texts."""
    from models.io import model_input

    files = [data_dir / "sentiment_train.csv", data_dir / "topic_train.csv"]
    if all(f.is_file() for f in files):
        texts = []
        for f in files:
            with open(f, newline="", encoding="utf-8") as fh:
                cleaned = (model_input(r["text"]) for r in csv.DictReader(fh))
                texts += [t for t in cleaned if t.strip()]
        return random.Random(seed).sample(texts, n), f"{n} random tweets from {data_dir.name}/ (seed {seed}), cleaned as the worker cleans them"
    return [FALLBACK_TEXTS[i % len(FALLBACK_TEXTS)] for i in range(n)], f"{n} built-in fallback headlines"


# -- threads ----------------------------------------------------------------------------------------

def pin_thread_env(threads: int) -> dict:
    """Environment for the thread pools, set before numpy/torch/onnxruntime/tokenizers are imported
    (most read it once, at load). Returns what was set, for the results."""
    env = {
        # The Rust tokenizer would otherwise run a rayon pool of all cores next to the model's pool.
        "TOKENIZERS_PARALLELISM": "false",
        "RAYON_NUM_THREADS": "1",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        # numpy's BLAS is not on the timed path (softmax, argsort, padding); keep it from starting a pool.
        "OPENBLAS_NUM_THREADS": "1",
    }
    os.environ.update(env)
    return env


def process_threads() -> int | None:
    """OS threads in this process now: shows which pools exist (main + intra-op workers, ideally)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def pin_torch_threads(threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)  # no inter-op parallelism is used; one pool is enough
    except RuntimeError:  # already fixed by earlier torch work in this process
        pass
    return {"torch_intra_op": torch.get_num_threads(), "torch_inter_op": torch.get_num_interop_threads()}


# -- statistics -------------------------------------------------------------------------------------

def summarize(values: list[float]) -> dict:
    """Median and spread of one cell's repeats (texts/s)."""
    if not values:
        raise ValueError("no values to summarize")
    v = sorted(values)
    if len(v) >= 2:
        q1, _, q3 = statistics.quantiles(v, n=4, method="inclusive")
    else:
        q1 = q3 = v[0]
    return {"median": round(statistics.median(v), 2), "min": round(v[0], 2), "max": round(v[-1], 2),
            "q1": round(q1, 2), "q3": round(q3, 2), "iqr": round(q3 - q1, 2), "n": len(v),
            "runs": [round(x, 2) for x in values]}


def spread(cell: dict) -> float:
    return cell["max"] - cell["min"]


def physics_check(backends: dict[str, dict[str, dict]], padding: dict[str, float] | None = None,
                  big: int = 32) -> tuple[list[str], list[str]]:
    """(inconsistencies, notes). ``backends``: name -> {batch size (str) -> summarize() dict};
    ``padding``: batch size (str) -> padded / real tokens (``padding_overhead``), or None.

    Per padded row, a batch of >= ``big`` rows is never slower than one row at a time (batching only
    adds parallel work), so batch 1 beating such a batch by more than the spread of either cell means
    the run was disturbed. The comparison is made per padded row: a length-sorted pass of 32 random
    tweets pads to its longest one and really does more work per text than batch 1. A raw (per text)
    batch-1 lead that padding accounts for is returned as a note, not an inconsistency."""
    issues, notes = [], []
    pad = padding or {}
    for name, row in backends.items():
        one = row.get("1")
        if not one:
            continue
        p1 = pad.get("1", 1.0)
        for b, cell in row.items():
            if int(b) < big:
                continue
            pb = pad.get(b, 1.0)
            gap = one["median"] * p1 - cell["median"] * pb
            tol = max(spread(one) * p1, spread(cell) * pb)
            if gap > tol:
                issues.append(f"{name}: batch 1 median {one['median']:.1f} texts/s > batch {b} median "
                              f"{cell['median']:.1f}" + (f" x {pb:.2f} padding" if padding else "")
                              + f", by more than the spread ({spread(one):.1f} / {spread(cell):.1f})")
            elif one["median"] - cell["median"] > max(spread(one), spread(cell)):
                notes.append(f"{name}: batch 1 ({one['median']:.1f} texts/s) beats batch {b} "
                             f"({cell['median']:.1f}) per text, within what its {pb:.2f}x padding explains")
    return issues, notes


def padding_overhead(token_lengths: list[int], batch: int, cap: int, max_tokens: int | None = None) -> float:
    """Padded / real tokens when ``batch`` texts per call are cut into the classifier's forward
    passes (``models.batching.sorted_batches``: length-sorted, at most ``cap`` rows and
    ``max_tokens`` padded tokens each), each padded to its longest row."""
    from models.batching import sorted_batches

    real = padded = 0
    for i in range(0, len(token_lengths), batch):
        for _, ids, mask in sorted_batches([[1] * n for n in token_lengths[i : i + batch]], cap, max_tokens):
            real += int(mask.sum())
            padded += ids.size
    return round(padded / real, 3) if real else 1.0


# -- timing -----------------------------------------------------------------------------------------

def timed_pass(fn: Callable[[list[str]], object], texts: list[str], batch: int) -> tuple[float, float | None]:
    """(texts/s, other processes' cores during the pass) for one pass over all texts, ``batch`` per call."""
    gc.collect()
    gc.disable()  # a collection inside one pass and not another is noise, not the model
    meter = CpuMeter().start()
    t0 = time.perf_counter()
    try:
        for i in range(0, len(texts), batch):
            fn(texts[i : i + batch])
        el = time.perf_counter() - t0
    finally:
        other = meter.stop()
        gc.enable()
    return len(texts) / el, other


def measure(fn: Callable[[list[str]], object], texts: list[str], batches: tuple[int, ...], repeats: int,
            label: str, log=print, other_limit: float | None = None, retries: int = 2) -> dict[str, dict]:
    """Warm-up on every batch size, then ``repeats`` interleaved timed passes; batch (str) -> summary.

    A pass during which other processes used more than ``other_limit`` cores is timed again, at most
    ``retries`` times: a burst from elsewhere says nothing about the backend. The last try is kept
    either way; ``disturbed`` counts the discarded tries and ``still_disturbed`` the kept ones."""
    for b in batches:
        for i in range(0, min(len(texts), max(2 * b, 8)), b):  # at least two calls, new shapes allocated
            fn(texts[i : i + b])
    cells = {b: (lambda b=b: timed_pass(fn, texts, b)) for b in batches}
    timed = interleaved(cells, repeats, lambda b: f"{label:12s} batch {b:4d}", other_limit, retries, log)
    out = {}
    for b, t in timed.items():
        out[str(b)] = summarize(t.runs)
        if t.others:
            out[str(b)]["other_cores_max"] = round(max(t.others), 2)
            out[str(b)]["other_cores_mean"] = round(statistics.mean(t.others), 2)
        if other_limit is not None:
            out[str(b)]["disturbed"] = t.retimed
            out[str(b)]["still_disturbed"] = t.still
    return out


@dataclass
class Timed:
    """One cell's kept passes (texts/s), the cores other processes used in them, the passes timed
    again because others were busy, and the kept passes that were still disturbed."""

    runs: list[float] = field(default_factory=list)
    others: list[float] = field(default_factory=list)
    retimed: int = 0
    still: int = 0


def interleaved(cells: dict[Any, Callable[[], tuple[float, float | None]]], repeats: int,
                label: Callable[[Any], str], other_limit: float | None, retries: int = 2,
                log=print) -> dict[Any, Timed]:
    """``repeats`` passes of every cell, in alternating order (a drift in the machine's speed then
    hits every cell alike). Each cell returns (texts/s, cores other processes used); a pass during
    which others used more than ``other_limit`` cores is timed again, at most ``retries`` times,
    and the last try is kept either way."""
    out = {key: Timed() for key in cells}
    keys = list(cells)
    for r in range(repeats):
        for key in (keys if r % 2 == 0 else keys[::-1]):
            t = out[key]
            for attempt in range(retries + 1):
                tps, other = cells[key]()
                hit = other_limit is not None and other is not None and other > other_limit
                log(f"{label(key)} repeat {r + 1}/{repeats}: {tps:8.1f} texts/s"
                    + (f"  (others used {other:.2f} cores)" if other is not None else "")
                    + ("  disturbed, timing it again" if hit and attempt < retries else ""))
                if not hit or attempt == retries:
                    break
                t.retimed += 1
            t.runs.append(tps)
            t.still += int(hit)
            if other is not None:
                t.others.append(other)
    return out


# -- backends ---------------------------------------------------------------------------------------

def hf_pipeline(threads: int):
    """transformers pipeline on the base encoder with a fresh 3-label head: one head where ours
    computes two. Base weights come from the installed package (models.base), offline."""
    import torch
    from transformers import AutoModelForSequenceClassification, pipeline
    from transformers.utils import logging as hf_logging

    from models.base import base_model_path, load_tokenizer

    pin_torch_threads(threads)
    hf_logging.set_verbosity_error()  # "classifier weights newly initialised" is expected here
    hf_logging.disable_progress_bar()
    path = base_model_path()  # sets HF_HUB_OFFLINE: a missing file fails instead of downloading
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=3).eval()
    pipe = pipeline("text-classification", model=model, tokenizer=load_tokenizer(path),
                    device=-1, truncation=True, max_length=128)

    def run(batch: list[str]):
        with torch.inference_mode():
            return [pipe(t) for t in batch]  # one text per call, as a loop over texts is written

    return run


def explain_cost(clf, texts: list[str]) -> dict:
    """Seconds per explained text: predict(explain=True) minus predict(), over negative texts."""
    preds = clf.predict(texts)
    neg = [t for t, p in zip(texts, preds) if p.sentiment == "negative"][:32]
    if not neg:
        return {}
    t0 = time.perf_counter()
    clf.predict(neg)
    plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    clf.predict(neg, explain=True)
    full = time.perf_counter() - t0
    words = statistics.mean(len(t.split()) for t in neg)
    return {"backend": clf.backend, "negative_texts": len(neg), "mean_words": round(words, 1),
            "ms_per_text_plain": round(1000 * plain / len(neg), 2),
            "ms_per_text_explained": round(1000 * full / len(neg), 2),
            "slowdown": round(full / plain, 1)}


# -- output -----------------------------------------------------------------------------------------

def machine_info(threads: int) -> dict:
    from models.machine import cpu_name

    return {"host": socket.gethostname(), "cpu": cpu_name(), "cores": usable_cores(), "cpu_count": os.cpu_count(),
            "threads": threads, "platform": platform.platform(), "python": platform.python_version()}


def default_out(host: str) -> Path:
    return ROOT / "bench" / "results" / f"models-{re.sub(r'[^A-Za-z0-9_.-]', '_', host) or 'cpu'}.json"


def _cell(c: dict | None) -> str:
    if not c:
        return "-"
    if c["n"] == 1:
        return f"{c['median']:.0f}"
    return f"{c['median']:.0f} ({c['min']:.0f}–{c['max']:.0f})"


def markdown(res: dict) -> str:
    m, load, batches = res["machine"], res["load"], res["batch_sizes"]
    lines = []
    if res["busy"]:
        lines.append("**Busy machine: these numbers are not representative.** " + " ".join(res["busy_reasons"]))
        lines.append("")
    if res["inconsistent"]:
        lines.append("**Inconsistent run (batch 1 faster per padded row than a batch >= 32):** "
                     + "; ".join(res["inconsistencies"]) + ".")
        lines.append("")
    end = load.get("loadavg_at_end")
    lines.append(
        f"Machine: {m['cpu']}, {m['cores']} cores (`{m['host']}`), {res['threads']} model threads, tokenizer "
        f"single-threaded. 1-min load average {load['loadavg_at_start'][0]:.2f} at start"
        + (f", {end[0]:.2f} at end (the benchmark's own threads included)" if end else "")
        + (f"; other processes used {load['other_cores_mean']:.2f} cores on average during the timed passes"
           if load.get("other_cores_mean") is not None else "")
        + (f" ({load['passes_retimed']} passes disturbed by them were timed again)"
           if load.get("passes_retimed") else "")
        + f". Date: {res['date'][:10]}. Texts: {res['texts']['source']}"
        + (f", {res['texts']['tokens_mean']:.0f} tokens on average (p95 {res['texts']['tokens_p95']})"
           if "tokens_mean" in res["texts"] else "")
        + f". Command: `{res['command']}`.")
    lines.append("")
    lines.append(
        f"Texts/s through `Classifier.predict` (tokenization, both heads, post-processing); batch N = N texts per "
        f"call, split inside into length-sorted passes of at most {res['max_rows_per_pass']} rows"
        + (f" and {res['max_tokens_per_pass']} padded tokens" if res.get("max_tokens_per_pass") else "") + ". Median of "
        f"{res['repeats']} timed passes over all texts (min–max in brackets), after a warm-up.")
    lines.append("")
    lines.append("| backend | " + " | ".join(f"batch {b}" for b in batches) + " |")
    lines.append("|---|" + "---|" * len(batches))
    for name, row in res["backends"].items():
        label = "HF `pipeline(\"text-classification\")`, one head" if name == BASELINE else name
        lines.append(f"| {label} | " + " | ".join(_cell(row.get(str(b))) for b in batches) + " |")
    pad = res.get("padding_overhead")
    if pad:
        lines.append("| padding (padded / real tokens) | " + " | ".join(f"{pad[str(b)]:.2f}" for b in batches) + " |")
    ratios = res.get("vs_baseline")
    if ratios:
        base = res["backends"][BASELINE]["1"]["median"]
        lines += ["", f"Against the HF pipeline at batch 1 ({base:.1f} texts/s, one head) in the same run:", "",
                  "| backend | " + " | ".join(f"batch {b}" for b in batches) + " |",
                  "|---|" + "---|" * len(batches)]
        for name, row in ratios.items():
            lines.append(f"| {name} | " + " | ".join(f"×{row[str(b)]:.1f}" if str(b) in row else "-" for b in batches)
                         + " |")
    if res.get("physics_notes"):
        lines += ["", "Batch 1 ahead per text, explained by padding: " + "; ".join(res["physics_notes"]) + "."]
    for name, reason in res.get("skipped", {}).items():
        lines += ["", f"{name}: not run ({reason})."]
    e = res.get("explain")
    if e:
        lines += ["", f"Explanations ({e['backend']}, {e['negative_texts']} negative texts of {e['mean_words']} words "
                  f"on average, batch of all variants): {e['ms_per_text_explained']} ms per explained text vs "
                  f"{e['ms_per_text_plain']} ms without (x{e['slowdown']})."]
    return "\n".join(lines)


def docs_allowed(flagged: bool, allow_busy: bool, no_docs: bool) -> bool:
    """The docs table shows numbers people size workers by: only a clean run, or one explicitly allowed."""
    return not no_docs and (allow_busy or not flagged)


def command_line(argv: list[str]) -> str:
    return " ".join([".venv/bin/python -m bench.bench_models", *argv]).strip()


# -- main -------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="classifier throughput benchmark (CPU)")
    ap.add_argument("--config", type=Path, default=None, help="settings file (model paths)")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke run: {QUICK_TEXTS} texts, 1 repeat, no re-timing, no explanation timing")
    ap.add_argument("--threads", type=int, default=None, help="model threads (default: the usable cores)")
    ap.add_argument("--repeats", type=int, default=None, help=f"timed passes per cell (default {DEFAULT_REPEATS})")
    ap.add_argument("--texts", type=int, default=None,
                    help=f"texts per pass (default {DEFAULT_TEXTS}; rounded up to a multiple of the largest batch)")
    ap.add_argument("--backends", default=",".join(DEFAULT_BACKENDS),
                    help=f"comma-separated, from {', '.join(BACKENDS)}")
    ap.add_argument("--batch-sizes", default=",".join(map(str, BATCH_SIZES)))
    ap.add_argument("--allow-busy", action="store_true",
                    help="run and publish even on a busy machine or with an inconsistent result (flagged)")
    ap.add_argument("--out", type=Path, default=None, help="results JSON (default bench/results/models-<host>.json)")
    ap.add_argument("--docs", type=Path, default=DOC, help="markdown file with the bench markers")
    ap.add_argument("--no-docs", action="store_true", help="leave the docs alone")
    args = ap.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in args.backends if b not in BACKENDS]
    if unknown or not args.backends:
        ap.error(f"unknown backend(s) {unknown}; choose from {', '.join(BACKENDS)}")
    try:
        args.batch_sizes = tuple(sorted({int(b) for b in args.batch_sizes.split(",") if b.strip()}))
    except ValueError:
        ap.error("--batch-sizes: comma-separated integers")
    if not args.batch_sizes or min(args.batch_sizes) < 1:
        ap.error("--batch-sizes: positive integers")
    args.repeats = args.repeats or (1 if args.quick else DEFAULT_REPEATS)
    n = args.texts or (QUICK_TEXTS if args.quick else DEFAULT_TEXTS)
    big = max(args.batch_sizes)
    # A multiple of the largest batch, so its last call is never a short one.
    args.texts = -(-n // big) * big
    if args.threads is not None and args.threads < 1:
        ap.error("--threads must be >= 1")
    return args


def main(argv: list[str] | None = None, loadavg: Callable[[], tuple[float, float, float]] = os.getloadavg) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    cores = usable_cores()
    threads = args.threads or cores
    # Before anything heavy is imported or loaded: a refused run costs nothing.
    start = check_load(cores, loadavg)
    if start.busy and not args.allow_busy:
        print(start.refusal("bench_models", "--allow-busy"), file=sys.stderr)
        return EXIT_BUSY
    env = pin_thread_env(threads)
    if threads > cores:
        print(f"warning: {threads} threads on {cores} usable cores: the pools will be oversubscribed", file=sys.stderr)

    from marketpulse.settings import Settings

    ms = (Settings.load(args.config) if args.config else Settings()).model
    ms = ms.model_copy(update={"device": "cpu"})  # a CPU benchmark, even where a GPU is present
    texts, source = load_texts(ms.data_dir, args.texts)
    batches = args.batch_sizes
    log = lambda s: print(s, flush=True)  # noqa: E731
    host_info = machine_info(threads)
    busy_reasons = [f"1-minute load average at start {start.load_1m:.2f} > {start.limit:.2f} "
                    f"({MAX_LOAD_PER_CORE} x {cores} cores)."] if start.busy else []
    res: dict = {
        "schema": 2, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(argv), "machine": host_info, "threads": threads,
        "thread_settings": {"env": env, "onnxruntime_passes_side_by_side": threads, "onnxruntime_intra_op": 1,
                            "onnxruntime_spinning": False},
        "load": {"loadavg_at_start": [round(x, 2) for x in start.loadavg], "limit_1m": round(start.limit, 2)},
        "texts": {"source": source, "count": len(texts)}, "repeats": args.repeats, "batch_sizes": list(batches),
        "max_rows_per_pass": 32, "baseline": BASELINE,
        "baseline_note": "transformers pipeline('text-classification'), one text per call, base encoder from the "
                         "installed base-weights package with a fresh 3-label head: one head, ours two",
        "backends": {}, "skipped": {},
    }

    from models.classifier import Classifier

    token_lengths = None
    other_all: list[float] = []
    other_limit = MAX_OTHER_CPU_PER_CORE * cores
    retries = 0 if args.quick else 2  # a smoke run checks the path; waiting out bursts is for real numbers
    order = [b for b in RUN_ORDER if b in args.backends]
    for name in order:
        if name == BASELINE:
            fn = hf_pipeline(threads)
            res["thread_settings"].update(pin_torch_threads(threads))
            res["backends"][name] = measure(fn, texts, (1,), args.repeats, "hf-pipeline", log, other_limit,
                                            retries)
            res["thread_settings"].setdefault("process_threads", {})[name] = process_threads()
            del fn
        else:
            if name == "tensorrt":
                from models.backends.tensorrt_backend import availability

                if availability() is not None:
                    res["skipped"][name] = availability()
                    continue
            if name == "torch":
                res["thread_settings"].update(pin_torch_threads(threads))
            clf = Classifier.from_settings(ms, backend=name, threads=threads)
            res["max_rows_per_pass"], res["max_tokens_per_pass"] = clf.batch_size, clf.max_tokens
            if token_lengths is None:
                token_lengths = [len(ids) for ids in clf.tokenizer(texts, truncation=True, max_length=ms.max_length)
                                 ["input_ids"]]
            res["backends"][clf.backend] = measure(clf.predict, texts, batches, args.repeats, clf.backend, log,
                                                   other_limit, retries)
            res["thread_settings"].setdefault("process_threads", {})[clf.backend] = process_threads()
            if clf.backend == "onnx-int8" and not args.quick:
                res["explain"] = explain_cost(clf, texts)
            del clf
        gc.collect()
        for cell in res["backends"].get(name, {}).values():
            if "other_cores_mean" in cell:
                other_all.append(cell["other_cores_mean"])

    if token_lengths:
        s = sorted(token_lengths)
        res["texts"].update({"tokens_mean": round(statistics.mean(s), 1), "tokens_p50": s[len(s) // 2],
                             "tokens_p95": s[min(len(s) - 1, int(0.95 * len(s)))], "tokens_max": s[-1]})
        res["padding_overhead"] = {str(b): padding_overhead(token_lengths, b, res["max_rows_per_pass"],
                                                            res.get("max_tokens_per_pass"))
                                   for b in batches}

    base = res["backends"].get(BASELINE, {}).get("1")
    if base:
        res["vs_baseline"] = {n: {b: round(c["median"] / base["median"], 2) for b, c in row.items()}
                              for n, row in res["backends"].items() if n != BASELINE}

    res["load"]["loadavg_at_end"] = [round(x, 2) for x in loadavg()]
    res["load"]["other_cores_limit"] = round(other_limit, 2)
    if other_all:
        res["load"]["other_cores_mean"] = round(statistics.mean(other_all), 2)
        if res["load"]["other_cores_mean"] > other_limit:
            busy_reasons.append(f"Other processes used {res['load']['other_cores_mean']:.2f} cores on average during "
                                f"the timed passes (> {other_limit:.2f}).")
    cells = [(n, b, c) for n, row in res["backends"].items() for b, c in row.items()]
    res["load"]["passes_retimed"] = sum(c.get("disturbed", 0) for _, _, c in cells)
    hit = [f"{n} batch {b}" for n, b, c in cells if c.get("still_disturbed")]
    if hit:
        retimed = res["load"]["passes_retimed"]
        busy_reasons.append(f"Other processes used more than {other_limit:.2f} cores during kept passes of "
                            f"{', '.join(hit)}" + (f" (after {retimed} passes timed again)." if retimed else "."))
    res["busy"], res["busy_reasons"] = bool(busy_reasons), busy_reasons
    res["inconsistencies"], res["physics_notes"] = physics_check(
        {n: r for n, r in res["backends"].items() if n != BASELINE}, res.get("padding_overhead"))
    res["inconsistent"] = bool(res["inconsistencies"])
    res["published_docs"] = False

    table = markdown(res)
    flagged = res["busy"] or res["inconsistent"]
    write_docs = docs_allowed(flagged, args.allow_busy, args.no_docs)
    out = args.out or default_out(host_info["host"])
    if write_docs:
        from bench.docs_table import replace_table

        res["published_docs"] = replace_table(args.docs, MARK_START, MARK_END, table)
        if not res["published_docs"]:
            print(f"warning: {args.docs} has no {MARK_START} / {MARK_END} markers; table not written", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(table)
    print(f"wrote {out}" + (f" and the table in {args.docs}" if res["published_docs"] else ""))
    if flagged and not args.allow_busy:
        what = " and ".join(w for w, f in (("busy", res["busy"]), ("inconsistent", res["inconsistent"])) if f)
        print(f"bench_models: run flagged {what}; {out} is marked so and the docs table was not written "
              "(rerun on an idle machine, or pass --allow-busy to publish it flagged)", file=sys.stderr)
        return EXIT_FLAGGED
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
