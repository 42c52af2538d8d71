"""The committed artifact's metrics: present, consistent, and (where the data is beside the clone)
reproducible on the dev and test splits, whose rows it never trained on."""
from __future__ import annotations

import json

import pytest

from models.report import int8_decision


@pytest.fixture(scope="module")
def metrics(model_settings):
    return json.loads((model_settings.artifact_dir / "metrics.json").read_text())


def test_artifact_is_small_and_complete(model_settings):
    d = model_settings.artifact_dir
    for f in ("config.json", "labels.json", "adapter.safetensors", "metrics.json", "calibration.json", "MODEL_CARD.md"):
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
    from models.data import artifact_splits
    from models.evaluate import evaluate

    if not (model_settings.data_dir / "sentiment_train.csv").is_file():
        pytest.skip(f"training data not present at {model_settings.data_dir}")
    sp = artifact_splits(model_settings.data_dir, model_settings.artifact_dir)
    got = evaluate(onnx_clf.predict_proba, sp.dev_sentiment, sp.dev_topic, sp.labels)
    for task in ("sentiment", "topic"):
        assert got[task]["n"] == metrics["torch_fp32"][task]["n"]
        assert got[task]["accuracy"] == pytest.approx(metrics["onnx_fp32"][task]["accuracy"], abs=2e-3)


def test_the_test_split_was_held_out_and_its_metrics_reproduce_with_the_cpu_model(model_settings, metrics, int8_clf):
    from models.data import artifact_splits
    from models.evaluate import evaluate

    if not (model_settings.data_dir / "sentiment_train.csv").is_file():
        pytest.skip(f"training data not present at {model_settings.data_dir}")
    sp = artifact_splits(model_settings.data_dir, model_settings.artifact_dir)
    test_rows = sp.test_sentiment + sp.test_topic
    assert len(sp.test_sentiment) == metrics["split"]["test_rows"]["sentiment"] > 0
    # a test text also seen in training can only be one the data itself repeats (in either file)
    from collections import Counter

    from models.data import SENTIMENT_FILE, TOPIC_FILE, read_labelled_csv

    texts = Counter(t for f in (SENTIMENT_FILE, TOPIC_FILE) for t, _ in read_labelled_csv(model_settings.data_dir / f))
    repeated = {t for t, n in texts.items() if n > 1}
    assert {e.text for e in test_rows} & {e.text for e in sp.train} <= repeated
    assert metrics["cpu_model"] == "onnx_int8"
    got = evaluate(int8_clf.predict_proba, sp.test_sentiment, sp.test_topic, sp.labels)
    for task in ("sentiment", "topic"):
        want = metrics["test"]["onnx_int8"][task]
        assert got[task]["n"] == want["n"]
        assert got[task]["accuracy"] == pytest.approx(want["accuracy"], abs=2e-3)
        lo, hi = want["intervals_95"]["accuracy"]
        assert lo <= want["accuracy"] <= hi


def test_targets_and_calibration_are_reported_as_measured(model_settings, metrics):
    test = metrics["test"]["onnx_int8"]
    assert metrics["targets"]["topic_accuracy"]["value"] == test["topic"]["accuracy"]
    assert metrics["targets"]["negative_f1"]["value"] == test["sentiment"]["per_class_f1"]["negative"]
    for k, v in metrics["targets"].items():
        if k != "on":
            assert v["met"] == (v["value"] >= v["target"])
    card = (model_settings.artifact_dir / "MODEL_CARD.md").read_text()
    assert f"T = {metrics['calibration']['sentiment']}" in card
    assert "confusion_matrices.png" in card and (model_settings.artifact_dir / "confusion_matrices.png").is_file()
