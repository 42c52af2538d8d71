"""Classifier throughput per backend and batch size, against a Hugging Face pipeline baseline.

    .venv/bin/python -m bench.bench_models [--quick] [--config FILE]

Texts: a fixed random sample of the shared financial-tweets files (real tweet lengths) when they
are present, else the built-in FALLBACK_TEXTS (similar headlines, documented below). Every number
goes through the full public path (tokenize -> sorted padded batches -> backend -> both heads'
softmax -> Prediction objects). Writes bench/results/models-<host>.json and the benchmark table in
docs/models.md (between the bench markers).
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import re
import statistics
import time
from pathlib import Path

from marketpulse.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
BATCH_SIZES = (1, 8, 32, 128)
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
    files = [data_dir / "sentiment_train.csv", data_dir / "topic_train.csv"]
    if all(f.is_file() for f in files):
        texts = []
        for f in files:
            with open(f, newline="", encoding="utf-8") as fh:
                texts += [r["text"] for r in csv.DictReader(fh) if r["text"].strip()]
        return random.Random(seed).sample(texts, n), f"{n} random tweets from {data_dir.name}/ (seed {seed})"
    return [FALLBACK_TEXTS[i % len(FALLBACK_TEXTS)] for i in range(n)], "built-in fallback headlines"


def throughput(fn, texts: list[str], batch: int, min_seconds: float) -> float:
    """texts/s calling ``fn`` on consecutive chunks of ``batch`` texts (one warm-up chunk first)."""
    fn(texts[:batch])
    done, t0, i = 0, time.perf_counter(), 0
    while True:
        chunk = texts[i : i + batch] if i + batch <= len(texts) else texts[:batch]
        fn(chunk)
        done += len(chunk)
        i = (i + batch) % max(1, len(texts) - batch)
        el = time.perf_counter() - t0
        if el >= min_seconds and done >= 2 * batch:
            return done / el


def hf_pipeline_baseline(texts: list[str], min_seconds: float) -> float:
    """transformers pipeline at batch 1: same base encoder with a (fresh) sequence-classification
    head, i.e. one head where ours computes two."""
    import torch
    from transformers import AutoModelForSequenceClassification, pipeline
    from transformers.utils import logging as hf_logging

    from models.base import base_model_path, load_tokenizer

    hf_logging.set_verbosity_error()  # "classifier weights newly initialised" is expected here
    path = base_model_path()
    model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=3)
    pipe = pipeline("text-classification", model=model, tokenizer=load_tokenizer(path), device=-1,
                    truncation=True, max_length=128)
    with torch.inference_mode():
        return throughput(lambda b: pipe(b, batch_size=1), texts, 1, min_seconds)


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


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores{', ' + m['gpu'] if 'gpu' in m else ''} (`{m['host']}`). "
             f"1-min load average at start: {m.get('loadavg_1m_at_start', '?')} (other processes share the cores; "
             "numbers drop sharply when they are busy). "
             f"Texts: {res['texts']}. Command: `{res['command']}`. Numbers are texts/s through "
             "`Classifier.predict` (tokenization, both heads, post-processing included); "
             "batch N = N texts per `predict` call (split internally into length-sorted batches of at most 32).", "",
             "| backend | " + " | ".join(f"batch {b}" for b in BATCH_SIZES) + " |",
             "|---|" + "---|" * len(BATCH_SIZES)]
    for name, row in res["backends"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[str(b)]:.0f}" if str(b) in row else "-" for b in BATCH_SIZES) + " |")
    if res.get("hf_pipeline_batch1"):
        lines.append(f"| HF `pipeline(\"text-classification\")`, one head | {res['hf_pipeline_batch1']:.0f} | - | - | - |")
    for name, reason in res.get("skipped", {}).items():
        lines.append(f"| {name} | skipped: {reason} | | | |")
    e = res.get("explain")
    if e:
        lines += ["", f"Explanations ({e['backend']}, {e['negative_texts']} negative texts of {e['mean_words']} words "
                  f"on average, batch of all variants): {e['ms_per_text_explained']} ms per explained text vs "
                  f"{e['ms_per_text_plain']} ms without (x{e['slowdown']})."]
    return "\n".join(lines)


def update_docs(table: str, docs: Path) -> None:
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    text = docs.read_text() if docs.is_file() else f"# Models\n\n## Benchmark\n{start}\n{end}\n"
    if start not in text:
        text += f"\n## Benchmark\n{start}\n{end}\n"
    text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: f"{start}\n{table}\n{end}", text, flags=re.S)
    docs.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="classifier throughput benchmark")
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="shorter timings (smoke run)")
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite docs/models.md")
    args = ap.parse_args(argv)
    import torch

    from models.backends.tensorrt_backend import availability
    from models.classifier import Classifier
    from models.machine import describe

    torch.set_num_threads(max(1, len(__import__("os").sched_getaffinity(0))))
    ms = (Settings.load(args.config) if args.config else Settings()).model
    min_s = 0.5 if args.quick else 3.0
    texts, source = load_texts(ms.data_dir, 1024)
    machine = describe()
    # Other processes (Kafka, Elasticsearch, test runs) share these cores; record how busy they were.
    machine["loadavg_1m_at_start"] = round(__import__("os").getloadavg()[0], 2)
    res = {"machine": machine, "texts": source, "command": ".venv/bin/python -m bench.bench_models" + (" --quick" if args.quick else ""),
           "min_seconds_per_cell": min_s, "backends": {}, "skipped": {}}
    names = ["torch", "onnx", "onnx-int8"]
    if availability() is None:
        names.append("tensorrt")
    else:
        res["skipped"]["tensorrt"] = availability()
    clfs = {}
    for name in names:
        clf = Classifier.from_settings(ms, backend=name)  # default internal batch cap (32 rows)
        clfs[name] = clf
        row = {}
        for b in BATCH_SIZES:
            row[str(b)] = round(throughput(clf.predict, texts, b, min_s), 1)
            print(f"{clf.backend:10s} batch {b:4d}: {row[str(b)]:8.1f} texts/s", flush=True)
        res["backends"][clf.backend] = row
    res["hf_pipeline_batch1"] = round(hf_pipeline_baseline(texts, min_s), 1)
    print(f"HF pipeline batch 1: {res['hf_pipeline_batch1']:.1f} texts/s", flush=True)
    best = max(res["backends"], key=lambda n: res["backends"][n]["32"])
    res["fastest_at_batch_32"] = best
    res["explain"] = explain_cost(clfs.get(best) or next(iter(clfs.values())), texts[:400])
    print(json.dumps(res["explain"]), flush=True)
    out = ROOT / "bench" / "results" / f"models-{re.sub(r'[^A-Za-z0-9_.-]', '_', machine['host']) or 'cpu'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    table = markdown(res)
    if not args.no_docs:
        update_docs(table, ROOT / "docs" / "models.md")
    print(table)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
