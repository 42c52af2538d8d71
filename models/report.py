"""After training: build the derived files, measure every CPU backend on the dev and test splits,
decide on int8 and fit the calibration temperatures (both on dev), and write ``metrics.json``,
``calibration.json``, ``MODEL_CARD.md`` and its picture into the artifact.

The test split is read here and nowhere in training: its numbers, with 95 % bootstrap intervals,
are the ones to quote. Re-run alone with ``marketpulse model report [ARTIFACT_DIR] [--config FILE]``
(data dir, build dir and max length from settings).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from marketpulse.settings import ModelSettings
from models.calibration import CALIBRATION_FILE, ECE_BINS, expected_calibration_error, fit_temperature, scale
from models.data import artifact_split_config, artifact_splits
from models.evaluate import bootstrap_intervals, metrics_from_probs, split_probs
from models.machine import cpu_name

INT8_TOLERANCE = 0.01
# On the test split, for the CPU model the stream worker runs (int8 when accepted).
TARGETS = {"sentiment_weighted_f1": 0.90, "topic_accuracy": 0.91, "negative_f1": 0.85}
PICTURE_FILE = "confusion_matrices.png"
BACKEND_KEYS = {"torch": "torch_fp32", "onnx": "onnx_fp32", "onnx-int8": "onnx_int8"}
HEADS = ("sentiment", "topic")


def _summary(m: dict) -> dict:
    return {task: {k: m[task][k] for k in ("accuracy", "macro_f1", "weighted_f1")} for task in HEADS}


def int8_decision(fp32: dict, int8: dict, tol: float = INT8_TOLERANCE) -> dict:
    """int8 is accepted when, for both heads, accuracy and weighted-F1 drop by at most ``tol``."""
    drops = {f"{task}_{k}": round(fp32[task][k] - int8[task][k], 4)
             for task in HEADS for k in ("accuracy", "weighted_f1")}
    return {"accepted": all(d <= tol for d in drops.values()), "tolerance": tol, "drop_vs_fp32": drops}


def cpu_dev_summary(metrics: dict) -> dict:
    """Dev accuracy/F1 of the model the CPU runs: int8 where it was accepted, else fp32."""
    if metrics.get("int8", {}).get("accepted"):
        return metrics["onnx_int8"]
    return metrics.get("onnx_fp32") or _summary(metrics["torch_fp32"])


def promotion_check(new: dict, old_dir: Path, tol: float = INT8_TOLERANCE) -> tuple[bool, str]:
    """(whether an artifact with metrics ``new`` may replace the one in ``old_dir``, why): the CPU
    model's dev accuracy of neither head more than ``tol`` below the old one's. Only comparable on the
    same dev rows; without them (nothing there yet, or another split) it may, and the reason says so."""
    p = Path(old_dir) / "metrics.json"
    if not p.is_file():
        return True, f"nothing at {old_dir} to compare with"
    old = json.loads(p.read_text())
    same_rows = ("dev_fraction", "test_fraction", "seed", "clean_text", "dev_rows")
    if any(new["split"].get(k) != old.get("split", {}).get(k) for k in same_rows):
        return True, f"{old.get('version')} was trained on another split, so dev accuracies are not comparable"
    a, b = cpu_dev_summary(new), cpu_dev_summary(old)
    drops = {h: round(b[h]["accuracy"] - a[h]["accuracy"], 4) for h in HEADS}
    ok = all(d <= tol for d in drops.values())
    said = ", ".join(f"{h} {a[h]['accuracy']:.4f} vs {b[h]['accuracy']:.4f}" for h in HEADS)
    return ok, (f"dev accuracy of the CPU model, {new['version']} vs {old.get('version')}: {said} "
                f"({'within' if ok else 'more than'} {tol} below)")


def target_check(m: dict) -> dict:
    got = {"sentiment_weighted_f1": m["sentiment"]["weighted_f1"], "topic_accuracy": m["topic"]["accuracy"],
           "negative_f1": m["sentiment"]["per_class_f1"]["negative"]}
    return {k: {"target": TARGETS[k], "value": v, "met": v >= TARGETS[k]} for k, v in got.items()}


def calibrate(probs: dict, truth: dict) -> dict:
    """Temperatures fitted on the torch fp32 dev probabilities (one per head), and the expected
    calibration error before and after, per backend and split. ``probs[backend][split]`` and
    ``truth[split]`` are (sentiment, topic) pairs."""
    temps = [fit_temperature(probs["torch"]["dev"][h], truth["dev"][h]) for h in (0, 1)]
    ece: dict = {}
    for name, by_split in probs.items():
        for split, p in by_split.items():
            ece.setdefault(BACKEND_KEYS[name], {})[split] = {
                head: {"before": expected_calibration_error(p[h], truth[split][h]),
                       "after": expected_calibration_error(scale(p[h], temps[h]), truth[split][h])}
                for h, head in enumerate(HEADS)}
    return {"sentiment": temps[0], "topic": temps[1],
            "fitted_on": "dev split, torch fp32 probabilities, minimum negative log-likelihood",
            "ece_bins": ECE_BINS, "ece": ece}


def finalize(artifact_dir: Path, data_dir: Path, build_dir: Path, max_length: int = 128, run_export: bool = True) -> dict:
    from models.classifier import Classifier

    artifact_dir = Path(artifact_dir)
    training = json.loads((artifact_dir / "training.json").read_text())
    cfg = json.loads((artifact_dir / "config.json").read_text())
    splits = artifact_splits(data_dir, artifact_dir)
    rows = {"dev": (splits.dev_sentiment, splits.dev_topic)}
    if splits.test_sentiment:
        rows["test"] = (splits.test_sentiment, splits.test_topic)
    ms = ModelSettings(artifact_dir=artifact_dir, build_dir=build_dir, data_dir=data_dir, max_length=max_length)

    probs, timings = {}, {}
    backends = ["torch", "onnx", "onnx-int8"] if run_export else ["torch"]
    for name in backends:
        clf = Classifier.from_settings(ms, backend=name, batch_size=64) if run_export else _torch_only(ms)
        clf.temperatures = (1.0, 1.0)  # measured raw: the temperatures are fitted from these
        t0 = time.time()
        probs[name] = {split: split_probs(clf.predict_proba, *r) for split, r in rows.items()}
        timings[name] = round(time.time() - t0, 1)
    results = {name: {split: metrics_from_probs(p, *rows[split], splits.labels) for split, p in by_split.items()}
               for name, by_split in probs.items()}
    truth = {split: tuple([getattr(e, head) for e in r] for head, r in zip(HEADS, pair)) for split, pair in rows.items()}

    fp32 = results["torch"]["dev"]
    metrics = {
        "version": cfg["version"],
        "split": {**artifact_split_config(artifact_dir), "stratified": True, "dev_rows": training["dev_rows"],
                  "test_rows": training.get("test_rows"), "train_rows": training["train_rows"]},
        "max_length": max_length,
        "torch_fp32": fp32,
        "eval_seconds": timings,
        "training": {k: training[k] for k in ("command", "best_step", "steps_run", "steps_per_epoch", "wall_time_s")},
    }
    cpu = "torch"
    if run_export:
        metrics["onnx_fp32"] = _summary(results["onnx"]["dev"])
        metrics["onnx_int8"] = _summary(results["onnx-int8"]["dev"])
        metrics["int8"] = int8_decision(fp32, results["onnx-int8"]["dev"])
        cpu = "onnx-int8" if metrics["int8"]["accepted"] else "onnx"
    if "test" in rows:
        metrics["test"] = {}
        for name in dict.fromkeys(("torch", cpu)):
            m = results[name]["test"]
            for h, head in enumerate(HEADS):
                m[head]["intervals_95"] = bootstrap_intervals(truth["test"][h], probs[name]["test"][h].argmax(1),
                                                              m[head]["labels"])
            metrics["test"][BACKEND_KEYS[name]] = m
        metrics["cpu_model"] = BACKEND_KEYS[cpu]
        metrics["targets"] = {"on": f"test split, {BACKEND_KEYS[cpu]}", **target_check(results[cpu]["test"])}
        confusion_picture(metrics["test"][BACKEND_KEYS[cpu]], artifact_dir / PICTURE_FILE,
                          f"{cfg['version']}, {BACKEND_KEYS[cpu]}, test split")
    else:
        metrics["targets"] = {"on": "dev split, torch_fp32 (the artifact has no test split)", **target_check(fp32)}
    metrics["calibration"] = calibrate(probs, truth)
    (artifact_dir / CALIBRATION_FILE).write_text(json.dumps(metrics["calibration"], indent=2) + "\n")
    (artifact_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (artifact_dir / "MODEL_CARD.md").write_text(model_card(cfg, training, metrics))
    return metrics


def confusion_picture(m: dict, out: Path, title: str) -> None:
    """Both heads' confusion matrices, row-normalised (each true class sums to 1), counts in cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(15, 7.2), gridspec_kw={"width_ratios": [1, 2.4]})
    for ax, task in zip(axes, HEADS):
        cm = np.array(m[task]["confusion_matrix"], dtype=float)
        share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        names = m[task]["labels"]
        ax.set_xticks(range(len(names)), names, rotation=90 if len(names) > 3 else 0, fontsize=7 if len(names) > 3 else 9)
        ax.set_yticks(range(len(names)), names, fontsize=7 if len(names) > 3 else 9)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{task}: accuracy {m[task]['accuracy']:.3f}, n = {m[task]['n']}")
        for i in range(len(names)):
            for j in range(len(names)):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=6 if len(names) > 3 else 10,
                            color="white" if share[i, j] > 0.5 else "black")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def _torch_only(ms: ModelSettings):
    from models.backends.torch_backend import TorchBackend
    from models.base import load_tokenizer
    from models.classifier import Classifier

    b = TorchBackend(ms.artifact_dir, None, "cpu")
    return Classifier(b, load_tokenizer(), b.labels, b.config["version"], ms.max_length)


def _tuning(cfg: dict) -> str:
    if cfg.get("lora"):
        return (f"LoRA adapters (r={cfg['lora']['r']}, alpha={cfg['lora']['alpha']}) on every attention and "
                "feed-forward Linear layer, plus the LayerNorms and the two heads; embeddings and base dense "
                "weights frozen. The artifact stores only these trained tensors in fp16; `python -m models.build` "
                "folds them into fp32 weights and exports ONNX fp32/int8.")
    return ("all weights except the word-embedding table (its 11.7M parameters stay at the base "
            "values). The artifact stores each fine-tuned matrix as an int8 difference from the base weight "
            "(one scale per row; error below fp16 rounding of the weight) and the small tensors in fp16, "
            "about 11 MB for six layers; `python -m models.build` rebuilds the fp32 model over the base weights and exports "
            "ONNX fp32/int8.")


def _row(name: str, m: dict) -> str:
    s, t = m["sentiment"], m["topic"]
    return (f"| {name} | {s['accuracy']:.4f} | {s['macro_f1']:.4f} | {s['weighted_f1']:.4f} "
            f"| {t['accuracy']:.4f} | {t['macro_f1']:.4f} | {t['weighted_f1']:.4f} |")


def metrics_table(metrics: dict) -> str:
    lines = ["| backend | sentiment acc | sentiment macro-F1 | sentiment weighted-F1 | topic acc | topic macro-F1 | topic weighted-F1 |",
             "|---|---|---|---|---|---|---|", _row("torch fp32", metrics["torch_fp32"])]
    if "onnx_fp32" in metrics:
        lines += [_row("onnx fp32", metrics["onnx_fp32"]), _row("onnx int8 (dynamic)", metrics["onnx_int8"])]
    return "\n".join(lines)


def _ci(m: dict, key: str) -> str:
    lo, hi = m["intervals_95"][key]
    return f"{m[key]:.4f} [{lo:.3f}, {hi:.3f}]"


def _class_ci(m: dict, name: str) -> str:
    lo, hi = m["intervals_95"]["per_class_f1"][name]
    return f"{m['per_class_f1'][name]:.3f} [{lo:.3f}, {hi:.3f}]"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # topic names such as "Energy | Oil" inside a Markdown table


def _test_section(metrics: dict) -> str:
    if "test" not in metrics:
        return ("## Test metrics\nNone: this artifact was trained without a test split, so the dev numbers below "
                "are the only ones, and slightly optimistic (the dev split also chose the stopping point).\n")
    test, cpu = metrics["test"], metrics["cpu_model"]
    cols = list(dict.fromkeys(("torch_fp32", cpu)))
    head = "| metric | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols)
    lines = [head]
    for task, key in (("sentiment", "accuracy"), ("sentiment", "macro_f1"), ("sentiment", "weighted_f1"),
                      ("topic", "accuracy"), ("topic", "macro_f1"), ("topic", "weighted_f1")):
        lines.append(f"| {task} {key.replace('_', '-')} | " + " | ".join(_ci(test[c][task], key) for c in cols) + " |")
    for name in test[cpu]["sentiment"]["labels"]:
        lines.append(f"| {name} F1 | " + " | ".join(_class_ci(test[c]["sentiment"], name) for c in cols) + " |")
    t = test[cpu]["topic"]
    per_topic = "\n".join(f"| {_cell(k)} | {_class_ci(t, k)} |"
                          for k, _ in sorted(t["per_class_f1"].items(), key=lambda kv: kv[1]))
    targets = "\n".join(f"- {k.replace('_', ' ')} >= {v['target']}: {v['value']:.4f}, {'met' if v['met'] else 'NOT met'}"
                        for k, v in metrics["targets"].items() if k != "on")
    return f"""## Test metrics (held out)
The test split was read once, by this report; no training decision looked at it. 95 % intervals
from {test[cpu]['sentiment']['intervals_95']['samples']} bootstrap resamplings of the test rows ({test[cpu]['sentiment']['n']} sentiment, {t['n']} topic).
{f"`{cpu}` is what the stream worker runs on a CPU." if cpu != "torch_fp32" else "Only torch fp32 was measured (export skipped)."}

{chr(10).join(lines)}

Targets ({metrics['targets']['on']}):
{targets}

![confusion matrices, test split]({PICTURE_FILE})

Topic F1 per class, `{cpu}`, test split (weakest first):

| topic | F1 [95 % interval] |
|---|---|
{per_topic}
"""


def _calibration_section(metrics: dict) -> str:
    c = metrics.get("calibration")
    if not c:
        return "## Calibration\nNone: probabilities are the raw softmax.\n"
    rows = [f"| {b} | {split} | {e['sentiment']['before']:.4f} | {e['sentiment']['after']:.4f} "
            f"| {e['topic']['before']:.4f} | {e['topic']['after']:.4f} |"
            for b, by_split in c["ece"].items() for split, e in by_split.items()]
    return f"""## Calibration
The alerter weights events by P(negative), so probabilities should mean what they say. One
temperature per head divides the logits (argmax, accuracy and F1 unchanged): sentiment
T = {c['sentiment']}, topic T = {c['topic']}, fitted on the {c['fitted_on']}. They ship in
`calibration.json` and every backend applies them.

Expected calibration error (top label, {c['ece_bins']} equal-width confidence bins), before and after:

| backend | split | sentiment before | sentiment after | topic before | topic after |
|---|---|---|---|---|---|
{chr(10).join(rows)}
"""


def model_card(cfg: dict, training: dict, metrics: dict) -> str:
    tc = training["config"]
    m = metrics["torch_fp32"]
    int8 = metrics.get("int8")
    int8_txt = "not measured (export skipped)" if not int8 else (
        f"{'accepted' if int8['accepted'] else 'rejected'} on the dev split: largest drop vs fp32 "
        f"{max(int8['drop_vs_fp32'].values()):+.4f} (tolerance {int8['tolerance']}; accuracy and weighted-F1 of both heads)")
    layers = cfg.get("layers") or 6
    test_rows = training.get("test_rows")
    split_txt = (f"Test split: stratified per label, {tc['test_fraction']:.0%} of each file, carved first "
                 f"({test_rows['sentiment']} sentiment rows, {test_rows['topic']} topic rows). " if test_rows else "")
    teacher = cfg.get("teacher_version") or cfg.get("distilled_from")
    distilled = (f"- Distilled from `{teacher}`: its logits on every training row teach both heads "
                 f"(temperature {tc['temperature']}, soft-loss weight {tc['distill_weight']}, next to the hard labels); "
                 "the student started from its matching weights.\n" if cfg.get("distilled_from") else "")
    return f"""# Model card: {cfg['version']}

Two-head financial-tweet classifier used by marketpulse: **sentiment** (negative / neutral / positive)
and **topic** (20 classes), both from one forward pass of a shared encoder.

## Model
- Base: `{cfg['base_model']}` (BertModel, hidden 384, 22.7M parameters in 6 layers), loaded from the
  `{cfg['base_package']}` PyPI package; never downloaded from a model hub. Layers used: {layers}.
- Head: mean pooling over tokens (as sentence-transformers), dropout 0.1, one linear layer per task.
- Fine-tuning: {_tuning(cfg)}
{distilled}- Training: multi-task batches mixing both files; each row has one task's label and the other task's
  loss is masked. Class imbalance: cross-entropy weighted by inverse class frequency^{tc['class_weight_power']}
  (mean weight 1), per task. AdamW, lr {tc['lr']} (heads {tc['head_lr']}), linear warmup {tc['warmup_fraction']:.0%} then
  decay, batch {tc['batch_size']}, length-grouped batches with dynamic padding, token cap {tc['train_max_length']}
  while training (p99 tweet length is 87 tokens), up to {tc['epochs']} epochs, seed {tc['seed']}, early stopping
  on the mean dev macro-F1 of both heads (patience {tc['patience']} evaluations, {tc['evals_per_epoch']} per epoch);
  the best evaluation's weights are kept (step {training['best_step']} of {training['steps_run']} run).
- Inference: truncation at {metrics['max_length']} tokens; logits divided by the calibration temperatures.

## Data
`financial-tweets/sentiment_train.csv` (9,542 rows) and `topic_train.csv` (16,989 rows) from the
shared data directory. {split_txt}Dev split: stratified per label, {tc['dev_fraction']:.0%} of each file, seed {tc['seed']}
({training['dev_rows']['sentiment']} sentiment rows, {training['dev_rows']['topic']} topic rows); it chose the stopping
point, the int8 decision and the temperatures. Training used the other {training['train_rows']} rows.

## Command
```
{training['command']}
```
Wall time {training["wall_time_s"] / 60:.1f} min on {training["machine"]["threads"]} CPU threads ({cpu_name()}).

{_test_section(metrics)}
## Dev metrics
{metrics_table(metrics)}

Sentiment confusion matrix, torch fp32, dev (rows = true, columns = predicted; {', '.join(m['sentiment']['labels'])}):
```
{chr(10).join(' '.join(f'{v:5d}' for v in row) for row in m['sentiment']['confusion_matrix'])}
```
Full confusion matrices of every split are in `metrics.json`.

{_calibration_section(metrics)}
## int8
Dynamic int8 quantization (ONNX Runtime, per-channel weights): {int8_txt}.

## Limits
- English financial tweets/headlines from one source and period; other registers (long news
  articles, Reddit threads, non-English text) are out of distribution. Text beyond {metrics['max_length']}
  tokens is ignored.
- Rare topics (e.g. IPO, Gold | Metals | Materials, with only a few dozen training rows) are much less
  reliable than the table's averages; see the per-class intervals above.
- Sentiment is the headline's market tone, not a trading signal; sarcasm and multi-company tweets
  with mixed tone are common failure modes.
- Explanations are occlusion-based (drop one word, see P(negative) fall): they describe this model's
  sensitivity, not causal ground truth.
"""
