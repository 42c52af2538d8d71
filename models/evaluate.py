"""Split metrics for both heads, backend-agnostic: pass any ``texts -> (sent_probs, topic_probs)``;
95 % bootstrap intervals for the reported ones."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from models.data import Example, LabelMaps

ProbFn = Callable[[list[str]], tuple[np.ndarray, np.ndarray]]


def task_metrics(y_true: Sequence[int], y_pred: Sequence[int], names: Sequence[str]) -> dict:
    ids = list(range(len(names)))
    return {
        "n": len(y_true),
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "macro_f1": round(float(f1_score(y_true, y_pred, labels=ids, average="macro", zero_division=0)), 4),
        "weighted_f1": round(float(f1_score(y_true, y_pred, labels=ids, average="weighted", zero_division=0)), 4),
        "per_class_f1": {
            n: round(float(f), 4)
            for n, f in zip(names, f1_score(y_true, y_pred, labels=ids, average=None, zero_division=0))
        },
        "labels": list(names),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=ids).tolist(),
    }


def split_probs(prob_fn: ProbFn, sentiment_rows: list[Example], topic_rows: list[Example]
                ) -> tuple[np.ndarray, np.ndarray]:
    """(sentiment probabilities of the sentiment rows, topic probabilities of the topic rows)."""
    return prob_fn([e.text for e in sentiment_rows])[0], prob_fn([e.text for e in topic_rows])[1]


def metrics_from_probs(probs: tuple[np.ndarray, np.ndarray], sentiment_rows: list[Example],
                       topic_rows: list[Example], labels: LabelMaps) -> dict:
    s_probs, t_probs = probs
    return {
        "sentiment": task_metrics([e.sentiment for e in sentiment_rows], s_probs.argmax(1).tolist(), labels.sentiment),
        "topic": task_metrics([e.topic for e in topic_rows], t_probs.argmax(1).tolist(), labels.topic),
    }


def evaluate(prob_fn: ProbFn, sentiment_rows: list[Example], topic_rows: list[Example], labels: LabelMaps) -> dict:
    return metrics_from_probs(split_probs(prob_fn, sentiment_rows, topic_rows), sentiment_rows, topic_rows, labels)


def selection_score(metrics: dict) -> float:
    """Early-stopping criterion: mean dev macro-F1 of the two heads."""
    return (metrics["sentiment"]["macro_f1"] + metrics["topic"]["macro_f1"]) / 2


BOOTSTRAP_SAMPLES = 2000


def _scores_from_confusion(cm: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """(accuracy, macro-F1, weighted-F1, per-class F1) of one confusion matrix (rows = true), as
    sklearn computes them with zero_division=0."""
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    n = support.sum()
    return float(tp.sum() / n), float(f1.mean()), float((f1 * support).sum() / n), f1


def bootstrap_intervals(y_true: Sequence[int], y_pred: Sequence[int], names: Sequence[str],
                        samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> dict:
    """95 % percentile intervals of accuracy, macro-F1, weighted-F1 and each class's F1, over
    ``samples`` resamplings of the rows with replacement (fixed seed: the report is reproducible)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    k, n = len(names), len(y_true)
    rng = np.random.default_rng(seed)
    acc, macro, weighted, per_class = [], [], [], []
    for _ in range(samples):
        idx = rng.integers(0, n, n)
        cm = np.bincount(y_true[idx] * k + y_pred[idx], minlength=k * k).reshape(k, k)
        a, m, w, f = _scores_from_confusion(cm)
        acc.append(a)
        macro.append(m)
        weighted.append(w)
        per_class.append(f)

    def ci(values) -> list[float]:
        lo, hi = np.percentile(values, [2.5, 97.5], axis=0)
        return [round(float(lo), 4), round(float(hi), 4)]

    pc = np.array(per_class)
    return {"samples": samples, "accuracy": ci(acc), "macro_f1": ci(macro), "weighted_f1": ci(weighted),
            "per_class_f1": {name: ci(pc[:, c]) for c, name in enumerate(names)}}
