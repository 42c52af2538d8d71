"""The CPU model stage step by step: texts/s and dev-split accuracy per optimisation, and where the
time goes per operator.

    .venv/bin/python -m bench.bench_model_steps [--texts 512] [--repeats 5] [--threads N]
        [--allow-busy] [--out FILE] [--no-docs] [--config FILE]

Each step is one ONNX graph or one run setting, on the committed artifact's merged weights:

* graphs, each run in fixed 32-row passes (how the classifier ran before these steps):
  ``fp32, eager attention`` (the shipped fp32 file, the accuracy reference); ``int8 dynamic, SDPA
  attention`` (what shipped before: exported with transformers' SDPA attention, whose graph guards
  every layer's softmax against NaN with ``Where``/``IsNaN``; built here); ``int8 dynamic, eager
  attention`` (the shipped int8 file: plain MatMul/Softmax attention); ``int8 static (QDQ)``
  (activation scales calibrated once, MinMax over 256 training tweets that are not in the dev
  split, instead of per call; built here);
* run settings on the shipped int8 graph: 16 rows per pass; passes of at most 64 rows and 1,024
  padded tokens; 2,048 tokens;
  ONNX Runtime's spinning threads (off by default: on a shared 2-core machine spinning starves
  the stream worker, Kafka and Elasticsearch); and whole passes side by side, one thread each
  (``models.backends.onnx_backend.OnnxBackend``), instead of one pass at a time with every thread
  sharing each operator, at 1,024 and at 512 padded tokens per pass (the shipped CPU default,
  ``models.classifier.CPU_TOKENS_PER_PASS``);
* ``--student ARTIFACT`` (repeatable): a student distilled from the configured artifact, on the
  same dev rows, its shipped int8 graph in the shipped run setting.

Measured in one run, on the same texts:

* speed: texts/s through ``Classifier.predict`` (tokenization, both heads, softmax, predictions),
  64 texts per call, ``--texts`` real tweets cleaned as the worker cleans them (bench_models' sample), median of ``--repeats`` passes
  interleaved across the steps, a pass disturbed by other processes timed again (bench_models'
  ``interleaved``); tokenization alone beside it, the ceiling of any model stage here;
* accuracy: the dev split the artifact was trained with (``models.data.artifact_splits``; rows training
  held out), sentiment and topic accuracy against fp32. A step *keeps accuracy* when neither head
  falls by more than 0.01;
* time per operator: ONNX Runtime's profiler over three passes of the SDPA int8 graph and of the
  fastest graph that keeps accuracy, kernel time summed per operator type.

Refuses a busy machine (load average at start) unless ``--allow-busy``, which flags the results.
Writes bench/results/model-steps-<host>.json and the table between the markers in docs/models.md.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from bench.bench_models import interleaved, load_texts, machine_info, pin_thread_env, summarize, timed_pass
from bench.docs_table import publish
from bench.machine_load import MAX_OTHER_CPU_PER_CORE, check_load, usable_cores

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "models.md"
BEGIN, END = "<!-- bench:model-steps:begin -->", "<!-- bench:model-steps:end -->"
EXIT_BUSY = 2
EXIT_FLAGGED = 3
CALL = 64  # texts per predict call, as a worker's micro-batch
MAX_DELTA = 0.01
CALIBRATION_TEXTS = 256


# -- the graphs -------------------------------------------------------------------------------------

def calibration_batches(tokenizer, max_length: int, data_dir: Path, dev: set[str]) -> list[dict]:
    """Inputs for static quantization: training tweets only (never a dev-split text), in the
    length-sorted, padded batches the classifier runs."""
    from models.batching import sorted_batches, tokenize

    texts = [t for t in load_texts(data_dir, 4 * CALIBRATION_TEXTS, seed=1)[0] if t not in dev][:CALIBRATION_TEXTS]
    ids = tokenize(tokenizer, texts, max_length)
    return [{"input_ids": i, "attention_mask": m} for _, i, m in sorted_batches(ids, 32)]


def quantize_static_qdq(src: Path, dst: Path, batches: list[dict]) -> Path:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(batches)

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul", "Gemm"],
                    calibrate_method=CalibrationMethod.MinMax)
    return dst


FP32 = "fp32, eager attention"
SDPA_INT8 = "int8 dynamic, SDPA attention"
SHIPPED_INT8 = "int8 dynamic, eager attention"
QDQ_INT8 = "int8 static (QDQ), eager attention"
# Graphs are compared in fixed 32-row passes (how the classifier ran before these steps); the run
# settings are then tried on the shipped int8 graph.
GRAPH_ROWS = 32


def graph_step(graph: str) -> str:
    return f"{graph}, {GRAPH_ROWS} rows per pass"


BASELINE = graph_step(SDPA_INT8)  # what shipped before these steps


def build_graphs(ms, paths: dict[str, Path], tmp: Path, calib: Callable[[], list[dict]], log) -> dict[str, Path]:
    """step name -> ONNX file: the shipped files as they are, the others exported here."""
    from models.artifact import load_merged_model
    from models.export import export_onnx, quantize_int8

    t0 = time.time()
    model, _, _ = load_merged_model(ms.artifact_dir, attn_implementation="sdpa")
    sdpa = export_onnx(model, tmp / "sdpa.onnx")
    del model
    graphs = {FP32: paths["onnx"], SDPA_INT8: quantize_int8(sdpa, tmp / "sdpa.int8.onnx"),
              SHIPPED_INT8: paths["int8"], QDQ_INT8: quantize_static_qdq(paths["onnx"], tmp / "qdq.onnx", calib())}
    log(f"built the step graphs in {time.time() - t0:.0f} s")
    return graphs


# Run settings on the shipped int8 graph: (rows per pass, padded tokens per pass, spinning threads,
# passes side by side on one thread each rather than one pass at a time on all threads).
SHIPPED_SETTING = "<= 512 tokens per pass, passes side by side"  # models.classifier's CPU defaults
SETTINGS = {
    "16 rows per pass": (16, None, False, False),
    "<= 1,024 tokens per pass": (64, 1024, False, False),
    "<= 2,048 tokens per pass": (64, 2048, False, False),
    "<= 1,024 tokens per pass, spinning threads": (64, 1024, True, False),
    "<= 1,024 tokens per pass, passes side by side": (64, 1024, False, True),
    f"{SHIPPED_SETTING} (shipped)": (64, 512, False, True),
}


def student_step(ms, artifact: Path, threads: int, log):
    """(step name, classifier) for a student artifact run as the shipped CPU model runs. Its dev
    split must be the reference's, else the accuracy columns would compare different rows."""
    from models.artifact import read_config
    from models.classifier import Classifier
    from models.data import artifact_split_config

    rows = ("dev_fraction", "test_fraction", "seed")  # the texts are the reference's either way
    if any(artifact_split_config(artifact)[k] != artifact_split_config(ms.artifact_dir)[k] for k in rows):
        raise SystemExit(f"{artifact} was trained on another split than {ms.artifact_dir}: its dev accuracy "
                         "would not be comparable")
    sms = ms.model_copy(update={"artifact_dir": Path(artifact)})
    clf = Classifier.from_settings(sms, backend="onnx-int8", threads=threads)
    layers = read_config(Path(artifact)).get("layers") or "all"
    return f"{layers}-layer student `{clf.model_version}`, {SHIPPED_INT8}, {SHIPPED_SETTING}", clf


# -- measures ---------------------------------------------------------------------------------------

def accuracy(clf, splits) -> dict:
    from models.evaluate import evaluate

    m = evaluate(clf.predict_proba, splits.dev_sentiment, splits.dev_topic, splits.labels)
    return {"sentiment": m["sentiment"]["accuracy"], "topic": m["topic"]["accuracy"]}


def op_profile(path: Path, batches: list[dict], threads: int, top: int = 12) -> dict[str, float]:
    """Share of kernel time per operator type over three passes of ``batches``."""
    import onnxruntime as ort

    from models.backends.onnx_backend import session_options

    so = session_options(threads)
    so.enable_profiling = True
    with tempfile.TemporaryDirectory() as d:
        so.profile_file_prefix = str(Path(d) / "ops")
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        for _ in range(3):
            for b in batches:
                sess.run(None, b)
        events = json.loads(Path(sess.end_profiling()).read_text())
    per_op: collections.Counter = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"]
    total = sum(per_op.values()) or 1
    shares = {op: round(100 * d / total, 1) for op, d in per_op.most_common(top)}
    shares["(other operators)"] = round(100 - sum(shares.values()), 1)
    return shares


def keeps_accuracy(acc: dict, ref: dict) -> bool:
    """Neither head's dev accuracy falls more than ``MAX_DELTA`` below the reference (a gain is kept)."""
    return all(round(ref[h] - acc[h], 6) <= MAX_DELTA for h in ("sentiment", "topic"))


# -- report -----------------------------------------------------------------------------------------

def markdown(res: dict) -> str:
    ref = res["steps"][BASELINE]["texts_per_s"]["median"]
    m, ld, tx = res["machine"], res["load"], res["texts"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores (`{m['host']}`), {res['threads']} model threads. 1-min load "
             f"average {ld['loadavg'][0]:.2f} at start; other processes used {ld['other_cores_mean']} cores on "
             f"average during the timed passes. Date: {res['date'][:10]}. Texts: {tx['source']}, {tx['tokens_mean']} "
             f"tokens on average (p95 {tx['tokens_p95']}), {tx['per_call']} per `predict` call; median of "
             f"{res['repeats']} interleaved passes. Accuracy: dev split ({res['dev_split']['sentiment']} sentiment, "
             f"{res['dev_split']['topic']} topic rows). Command: `{res['command']}`.", "",
             "| step | texts/s (median, min–max) | vs before | sentiment acc. | topic acc. | keeps accuracy |",
             "|---|---|---|---|---|---|"]
    for name, st in res["steps"].items():
        t = st["texts_per_s"]
        acc = st.get("accuracy")
        lines.append(f"| {name} | {t['median']:.1f} ({t['min']:.0f}–{t['max']:.0f}) | ×{t['median'] / ref:.2f} | "
                     + (f"{acc['sentiment']:.4f} | {acc['topic']:.4f} | {'yes' if st['keeps_accuracy'] else 'no'} |"
                        if acc else "same graph | | |"))
    tk = res["tokenization"]
    lines.append(f"| tokenization alone (ceiling) | {tk['median']:.0f} ({tk['min']:.0f}–{tk['max']:.0f}) | "
                 f"×{tk['median'] / ref:.1f} | | | |")
    lines += ["", "Kernel time per operator (ONNX Runtime profiler):", "",
              "| operator | " + " | ".join(res["op_profile"]) + " |", "|---|" + "---|" * len(res["op_profile"])]
    ops = list(dict.fromkeys(op for p in res["op_profile"].values() for op in p if op != "(other operators)"))
    for op in ops + ["(other operators)"]:
        lines.append(f"| {op} | " + " | ".join(f"{p[op]:.1f} %" if op in p else "" for p in res["op_profile"].values())
                     + " |")
    if res.get("flagged"):
        lines += ["", f"**Flagged: {' '.join(res['flagged'])}**"]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.bench_model_steps", description=__doc__.split("\n")[0])
    p.add_argument("--texts", type=int, default=512)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="model threads (default: the usable cores)")
    p.add_argument("--allow-busy", action="store_true")
    p.add_argument("--out", type=Path)
    p.add_argument("--no-docs", action="store_true")
    p.add_argument("--config", type=Path)
    p.add_argument("--student", type=Path, action="append", default=[], metavar="ARTIFACT",
                   help="also measure this artifact (a student distilled from the configured one, trained on the "
                        "same split) with the shipped int8 graph and run setting; repeatable")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    cores = usable_cores()
    threads = args.threads or cores
    start = check_load(cores)
    if start.busy and not args.allow_busy:
        print(start.refusal("bench_model_steps", "--allow-busy"), file=sys.stderr)
        return EXIT_BUSY
    env = pin_thread_env(threads)
    log = lambda s: print(s, flush=True)  # noqa: E731

    from marketpulse.settings import Settings
    from models.backends.onnx_backend import OnnxBackend
    from models.batching import sorted_batches, tokenize
    from models.build import ensure_built
    from models.classifier import Classifier
    from models.data import artifact_split_config, artifact_splits
    from models.io import model_input

    ms = (Settings.load(args.config) if args.config else Settings()).model.model_copy(update={"device": "cpu"})
    paths = ensure_built(ms, log=log)
    base = Classifier.from_settings(ms, backend="onnx-int8", threads=threads)
    texts, source = load_texts(ms.data_dir, args.texts)
    token_ids = tokenize(base.tokenizer, texts, ms.max_length)
    splits = artifact_splits(ms.data_dir, ms.artifact_dir)
    dev = {model_input(e.text) for e in splits.dev_sentiment + splits.dev_topic}  # as load_texts gives them
    flagged = [f"1-minute load average at start {start.load_1m:.2f} > {start.limit:.2f}."] if start.busy else []

    with tempfile.TemporaryDirectory(prefix="model-steps-") as d:
        graphs = build_graphs(ms, paths, Path(d), lambda: calibration_batches(base.tokenizer, ms.max_length,
                                                                               ms.data_dir, dev), log)
        steps: dict[str, dict] = {}
        clfs = {}
        for name, path in graphs.items():
            key = graph_step(name)
            clfs[key] = Classifier(OnnxBackend(path, name, threads, side_by_side=False), base.tokenizer, base.labels,
                                   base.model_version, ms.max_length, batch_size=GRAPH_ROWS,
                                   temperatures=base.temperatures)
            t0 = time.time()
            steps[key] = {"graph": name, "accuracy": accuracy(clfs[key], splits)}
            log(f"{name}: dev accuracy {steps[key]['accuracy']} ({time.time() - t0:.0f} s)")
        ref = steps[graph_step(FP32)]["accuracy"]
        for st in steps.values():
            st["keeps_accuracy"] = keeps_accuracy(st["accuracy"], ref)
        for name, (rows, tokens, spin, side) in SETTINGS.items():
            key = f"{SHIPPED_INT8}, {name}"
            clfs[key] = Classifier(OnnxBackend(graphs[SHIPPED_INT8], key, threads, spinning=spin, side_by_side=side),
                                   base.tokenizer, base.labels, base.model_version, ms.max_length, batch_size=rows,
                                   max_tokens=tokens, temperatures=base.temperatures)
            steps[key] = {"graph": SHIPPED_INT8, "rows_per_pass": rows, "tokens_per_pass": tokens, "spinning": spin,
                          "side_by_side": side}

        for student in args.student:
            key, clfs[key] = student_step(ms, student, threads, log)
            steps[key] = {"graph": SHIPPED_INT8, "artifact": str(student), "accuracy": accuracy(clfs[key], splits),
                          "rows_per_pass": clfs[key].batch_size, "tokens_per_pass": clfs[key].max_tokens,
                          "side_by_side": True}
            steps[key]["keeps_accuracy"] = keeps_accuracy(steps[key]["accuracy"], ref)
            log(f"{key}: dev accuracy {steps[key]['accuracy']}")

        for clf in clfs.values():  # warm-up: every shape the timed passes will see
            for i in range(0, len(texts), CALL):
                clf.predict(texts[i : i + CALL])
        cells = {name: (lambda c=clf: timed_pass(c.predict, texts, CALL)) for name, clf in clfs.items()}
        cells["tokenization"] = lambda: timed_pass(lambda b: tokenize(base.tokenizer, b, ms.max_length), texts, CALL)
        other_limit = MAX_OTHER_CPU_PER_CORE * cores
        timed = interleaved(cells, args.repeats, lambda k: f"{k:52s}", other_limit, 2, log)
        for name, t in timed.items():
            if name != "tokenization":
                steps[name]["texts_per_s"] = summarize(t.runs)
        others = [o for t in timed.values() for o in t.others]
        if others and statistics.mean(others) > other_limit:
            flagged.append(f"Other processes used {statistics.mean(others):.2f} cores on average "
                           f"(> {other_limit:.2f}).")

        keep = [n for n in graphs if steps[graph_step(n)]["keeps_accuracy"]]
        fastest = max(keep, key=lambda n: steps[graph_step(n)]["texts_per_s"]["median"])
        batches = [{"input_ids": i, "attention_mask": m} for _, i, m in sorted_batches(token_ids, GRAPH_ROWS)]
        profiles = {name: op_profile(graphs[name], batches, threads) for name in dict.fromkeys([SDPA_INT8, fastest])}

    lengths = sorted(len(t) for t in token_ids)
    res = {
        "schema": 1, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python -m bench.bench_model_steps", *argv]), "machine": machine_info(threads),
        "threads": threads, "thread_env": env,
        "load": {**start.as_dict(), "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
                 "other_cores_mean": round(statistics.mean(others), 2) if others else None},
        "texts": {"source": source, "count": len(texts), "tokens_mean": round(statistics.mean(lengths), 1),
                  "tokens_p95": lengths[int(0.95 * (len(lengths) - 1))], "per_call": CALL},
        "dev_split": {"sentiment": len(splits.dev_sentiment), "topic": len(splits.dev_topic),
                      **artifact_split_config(ms.artifact_dir)},
        "max_accuracy_change": MAX_DELTA, "repeats": args.repeats,
        "steps": steps, "tokenization": summarize(timed["tokenization"].runs),
        "fastest_keeping_accuracy": fastest, "op_profile": profiles, "flagged": flagged,
    }
    out = args.out or ROOT / "bench" / "results" / f"model-steps-{socket.gethostname().split('.')[0]}.json"
    publish(res, out, markdown(res), None if (args.no_docs or (flagged and not args.allow_busy)) else DOC, BEGIN, END)
    return EXIT_FLAGGED if flagged and not args.allow_busy else 0


if __name__ == "__main__":
    sys.exit(main())
