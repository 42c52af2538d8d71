"""After training: build the derived files, measure every CPU backend on the dev split, decide on
int8, and write ``metrics.json`` and ``MODEL_CARD.md`` into the artifact.

Re-run alone with ``marketpulse model report [ARTIFACT_DIR] [--config FILE]`` (data dir, build dir and
max length from settings).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from marketpulse.settings import ModelSettings
from models.data import load_splits
from models.evaluate import evaluate
from models.machine import cpu_name

INT8_TOLERANCE = 0.01
TARGETS = {"sentiment_weighted_f1": 0.88, "topic_accuracy": 0.90}


def _summary(m: dict) -> dict:
    return {task: {k: m[task][k] for k in ("accuracy", "macro_f1", "weighted_f1")} for task in ("sentiment", "topic")}


def int8_decision(fp32: dict, int8: dict, tol: float = INT8_TOLERANCE) -> dict:
    """int8 is accepted when, for both heads, accuracy and weighted-F1 drop by at most ``tol``."""
    drops = {f"{task}_{k}": round(fp32[task][k] - int8[task][k], 4)
             for task in ("sentiment", "topic") for k in ("accuracy", "weighted_f1")}
    return {"accepted": all(d <= tol for d in drops.values()), "tolerance": tol, "drop_vs_fp32": drops}


def finalize(artifact_dir: Path, data_dir: Path, build_dir: Path, max_length: int = 128, run_export: bool = True) -> dict:
    from models.classifier import Classifier

    artifact_dir = Path(artifact_dir)
    training = json.loads((artifact_dir / "training.json").read_text())
    cfg = json.loads((artifact_dir / "config.json").read_text())
    tc = training["config"]
    splits = load_splits(data_dir, tc["dev_fraction"], tc["seed"])
    ms = ModelSettings(artifact_dir=artifact_dir, build_dir=build_dir, data_dir=data_dir, max_length=max_length)

    results, timings = {}, {}
    backends = ["torch", "onnx", "onnx-int8"] if run_export else ["torch"]
    for name in backends:
        if name == "torch" and not run_export:
            clf = _torch_only(ms)
        else:
            clf = Classifier.from_settings(ms, backend=name, batch_size=64)
        t0 = time.time()
        results[name] = evaluate(clf.predict_proba, splits.dev_sentiment, splits.dev_topic, splits.labels)
        timings[name] = round(time.time() - t0, 1)

    fp32 = results["torch"]
    metrics = {
        "version": cfg["version"],
        "split": {"dev_fraction": tc["dev_fraction"], "seed": tc["seed"], "stratified": True,
                  "dev_rows": training["dev_rows"], "train_rows": training["train_rows"]},
        "max_length": max_length,
        "torch_fp32": fp32,
        "targets": {**TARGETS, "met": {
            "sentiment_weighted_f1": fp32["sentiment"]["weighted_f1"] >= TARGETS["sentiment_weighted_f1"],
            "topic_accuracy": fp32["topic"]["accuracy"] >= TARGETS["topic_accuracy"]}},
        "dev_eval_seconds": timings,
        "training": {k: training[k] for k in ("command", "best_step", "steps_run", "steps_per_epoch", "wall_time_s")},
    }
    if run_export:
        metrics["onnx_fp32"] = _summary(results["onnx"])
        metrics["onnx_int8"] = _summary(results["onnx-int8"])
        metrics["int8"] = int8_decision(fp32, results["onnx-int8"])
    (artifact_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (artifact_dir / "MODEL_CARD.md").write_text(model_card(cfg, training, metrics))
    return metrics


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
    return ("all weights except the word-embedding table (11.7M of 22.7M parameters, kept at the base "
            "values). The artifact stores each fine-tuned matrix as an int8 difference from the base weight "
            "(one scale per row; error below fp16 rounding of the weight) and the small tensors in fp16, "
            "about 11 MB; `python -m models.build` rebuilds the fp32 model over the base weights and exports "
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


def model_card(cfg: dict, training: dict, metrics: dict) -> str:
    tc = training["config"]
    m = metrics["torch_fp32"]
    int8 = metrics.get("int8")
    per_topic = "\n".join(f"| {k} | {v:.3f} |" for k, v in sorted(m["topic"]["per_class_f1"].items(), key=lambda kv: kv[1]))
    int8_txt = "not measured (export skipped)" if not int8 else (
        f"{'accepted' if int8['accepted'] else 'rejected'}: largest drop vs fp32 "
        f"{max(int8['drop_vs_fp32'].values()):+.4f} (tolerance {int8['tolerance']}; accuracy and weighted-F1 of both heads)")
    met = metrics["targets"]["met"]
    return f"""# Model card: {cfg['version']}

Two-head financial-tweet classifier used by marketpulse: **sentiment** (negative / neutral / positive)
and **topic** (20 classes), both from one forward pass of a shared encoder.

## Model
- Base: `{cfg['base_model']}` (BertModel, 6 layers, hidden 384, 22.7M parameters), loaded from the
  `{cfg['base_package']}` PyPI package; never downloaded from a model hub.
- Head: mean pooling over tokens (as sentence-transformers), dropout 0.1, one linear layer per task.
- Fine-tuning: {_tuning(cfg)}
- Training: multi-task batches mixing both files; each row has one task's label and the other task's
  loss is masked. Class imbalance: cross-entropy weighted by inverse class frequency^{tc['class_weight_power']}
  (mean weight 1), per task. AdamW, lr {tc['lr']} (heads {tc['head_lr']}), linear warmup {tc['warmup_fraction']:.0%} then
  decay, batch {tc['batch_size']}, length-grouped batches with dynamic padding, token cap {tc['train_max_length']}
  while training (p99 tweet length is 87 tokens), up to {tc['epochs']} epochs, seed {tc['seed']}, early stopping
  on the mean dev macro-F1 of both heads (patience {tc['patience']} evaluations, {tc['evals_per_epoch']} per epoch);
  the best evaluation's weights are kept (step {training['best_step']} of {training['steps_run']} run).
- Inference: truncation at {metrics['max_length']} tokens.

## Data
`financial-tweets/sentiment_train.csv` (9,542 rows) and `topic_train.csv` (16,989 rows) from the
shared data directory. Dev split: stratified per label, {tc['dev_fraction']:.0%} of each file, seed {tc['seed']}
({training['dev_rows']['sentiment']} sentiment rows, {training['dev_rows']['topic']} topic rows); training used the other
{training['train_rows']} rows. No separate test set exists: the dev split also chose the stopping point, so these
numbers are slightly optimistic.

## Command
```
{training['command']}
```
Wall time {training["wall_time_s"] / 60:.1f} min on {training["machine"]["threads"]} CPU threads ({cpu_name()}).

## Dev metrics
{metrics_table(metrics)}

Targets: sentiment weighted-F1 >= {TARGETS['sentiment_weighted_f1']} ({'met' if met['sentiment_weighted_f1'] else 'NOT met'}),
topic accuracy >= {TARGETS['topic_accuracy']} ({'met' if met['topic_accuracy'] else 'NOT met'}).

Sentiment confusion matrix (rows = true, columns = predicted; {', '.join(m['sentiment']['labels'])}):
```
{chr(10).join(' '.join(f'{v:5d}' for v in row) for row in m['sentiment']['confusion_matrix'])}
```
Topic F1 per class (weakest first):

| topic | F1 |
|---|---|
{per_topic}

Full confusion matrices are in `metrics.json`.

## int8
Dynamic int8 quantization (ONNX Runtime, per-channel weights): {int8_txt}.

## Distillation
Not done. Distilling from all-mpnet-base-v2 (110M parameters) means labelling ~24k tweets with a
teacher about 5x as expensive per token as the student, and the teacher itself would first need
fine-tuning on both tasks; on a 2-core CPU that is several hours, beyond the training budget.

## Limits
- English financial tweets/headlines from one source and period; other registers (long news
  articles, Reddit threads, non-English text) are out of distribution. Text beyond {metrics['max_length']}
  tokens is ignored.
- Rare topics (e.g. IPO, Gold | Metals | Materials, with only a few dozen training rows) are much less
  reliable than the table's averages; see per-class F1 above.
- Sentiment is the headline's market tone, not a trading signal; sarcasm and multi-company tweets
  with mixed tone are common failure modes.
- Explanations are occlusion-based (drop one word, see P(negative) fall): they describe this model's
  sensitivity, not causal ground truth.
"""
