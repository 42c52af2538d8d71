"""Dev-split metrics for both heads, backend-agnostic: pass any ``texts -> (sent_probs, topic_probs)``."""
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


def evaluate(prob_fn: ProbFn, dev_sentiment: list[Example], dev_topic: list[Example], labels: LabelMaps) -> dict:
    s_probs, _ = prob_fn([e.text for e in dev_sentiment])
    _, t_probs = prob_fn([e.text for e in dev_topic])
    return {
        "sentiment": task_metrics([e.sentiment for e in dev_sentiment], s_probs.argmax(1).tolist(), labels.sentiment),
        "topic": task_metrics([e.topic for e in dev_topic], t_probs.argmax(1).tolist(), labels.topic),
    }


def selection_score(metrics: dict) -> float:
    """Early-stopping criterion: mean dev macro-F1 of the two heads."""
    return (metrics["sentiment"]["macro_f1"] + metrics["topic"]["macro_f1"]) / 2
