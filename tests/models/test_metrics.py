"""The committed artifact's metrics: present, consistent, and (where the data is beside the clone)
reproducible on the dev split."""
from __future__ import annotations

import json

import pytest

from models.report import int8_decision


@pytest.fixture(scope="module")
def metrics(model_settings):
    return json.loads((model_settings.artifact_dir / "metrics.json").read_text())


def test_artifact_is_small_and_complete(model_settings):
    d = model_settings.artifact_dir
    for f in ("config.json", "labels.json", "adapter.safetensors", "metrics.json", "MODEL_CARD.md"):
        assert (d / f).is_file(), f
    assert sum(p.stat().st_size for p in d.iterdir()) < 25 * 2**20


def test_metrics_cover_both_tasks_and_the_int8_decision(metrics):
    for task, n_labels in (("sentiment", 3), ("topic", 20)):
        m = metrics["torch_fp32"][task]
        for k in ("accuracy", "macro_f1", "weighted_f1"):
            assert 0 < m[k] <= 1
        cm = m["confusion_matrix"]
        assert len(cm) == n_labels and sum(map(sum, cm)) == m["n"]
        assert sum(cm[i][i] for i in range(n_labels)) / m["n"] == pytest.approx(m["accuracy"], abs=1e-4)
    assert metrics["int8"] == int8_decision(metrics["torch_fp32"], metrics["onnx_int8"], metrics["int8"]["tolerance"])


def test_int8_decision_rule():
    fp32 = {t: {"accuracy": 0.9, "weighted_f1": 0.9} for t in ("sentiment", "topic")}
    ok = {t: {"accuracy": 0.895, "weighted_f1": 0.9} for t in ("sentiment", "topic")}
    bad = {"sentiment": {"accuracy": 0.9, "weighted_f1": 0.88}, "topic": {"accuracy": 0.9, "weighted_f1": 0.9}}
    assert int8_decision(fp32, ok)["accepted"]
    assert not int8_decision(fp32, bad)["accepted"]


def test_dev_metrics_reproduce(model_settings, metrics, onnx_clf):
    from models.data import load_splits
    from models.evaluate import evaluate

    if not (model_settings.data_dir / "sentiment_train.csv").is_file():
        pytest.skip(f"training data not present at {model_settings.data_dir}")
    sp = load_splits(model_settings.data_dir, metrics["split"]["dev_fraction"], metrics["split"]["seed"])
    got = evaluate(onnx_clf.predict_proba, sp.dev_sentiment, sp.dev_topic, sp.labels)
    for task in ("sentiment", "topic"):
        assert got[task]["n"] == metrics["torch_fp32"][task]["n"]
        assert got[task]["accuracy"] == pytest.approx(metrics["onnx_fp32"][task]["accuracy"], abs=2e-3)
