"""Split metrics and their 95 % bootstrap intervals."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix

from models.evaluate import _scores_from_confusion, bootstrap_intervals, task_metrics


def _predictions(n, accuracy=0.8, k=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    return y, np.where(rng.random(n) < accuracy, y, rng.integers(0, k, n))


def test_scores_from_a_confusion_matrix_are_sklearns():
    y, p = _predictions(500)
    names = list("abcd")
    a, m, w, f = _scores_from_confusion(confusion_matrix(y, p, labels=range(4)))
    ref = task_metrics(y.tolist(), p.tolist(), names)
    assert (round(a, 4), round(m, 4), round(w, 4)) == (ref["accuracy"], ref["macro_f1"], ref["weighted_f1"])
    assert [round(x, 4) for x in f] == list(ref["per_class_f1"].values())


def test_intervals_hold_the_estimate_and_narrow_with_more_rows():
    names = list("abcd")
    widths = []
    for n in (200, 3200):
        y, p = _predictions(n, seed=n)
        ci = bootstrap_intervals(y, p, names, samples=500)
        est = task_metrics(y.tolist(), p.tolist(), names)
        for key in ("accuracy", "macro_f1", "weighted_f1"):
            assert ci[key][0] <= est[key] <= ci[key][1]
        assert set(ci["per_class_f1"]) == set(names)
        widths.append(ci["accuracy"][1] - ci["accuracy"][0])
    assert widths[1] < widths[0] / 2  # ~1/sqrt(n): 16x the rows, a quarter of the width


def test_intervals_are_reproducible():
    y, p = _predictions(300)
    assert bootstrap_intervals(y, p, list("abcd"), samples=200) == bootstrap_intervals(y, p, list("abcd"), samples=200)


def test_a_perfect_classifier_has_a_point_interval():
    y = np.arange(40) % 4
    ci = bootstrap_intervals(y, y, list("abcd"), samples=100)
    assert ci["accuracy"] == [1.0, 1.0] and ci["per_class_f1"]["a"] == pytest.approx([1.0, 1.0])
