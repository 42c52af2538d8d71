"""The committed 3-layer student (``models/artifacts/fast/``): small, loadable with its layers, its
committed dev metrics reproduce with its CPU model, and it keeps the promotion rule against the
default (neither head's dev accuracy more than 0.01 below) - the reason it may stand in for it."""
from __future__ import annotations

import json

import pytest

from models.report import cpu_dev_summary, promotion_check


@pytest.fixture(scope="module")
def fast_settings(model_settings):
    return model_settings.model_copy(update={"artifact_dir": model_settings.artifact_dir.parent / "fast"})


@pytest.fixture(scope="module")
def fast_metrics(fast_settings):
    return json.loads((fast_settings.artifact_dir / "metrics.json").read_text())


def test_the_student_is_small_has_three_layers_and_says_what_taught_it(fast_settings):
    d = fast_settings.artifact_dir
    for f in ("config.json", "labels.json", "adapter.safetensors", "metrics.json", "calibration.json", "MODEL_CARD.md"):
        assert (d / f).is_file(), f
    assert sum(p.stat().st_size for p in d.iterdir()) < 10 * 2**20
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["layers"] == 3 and cfg["teacher_version"]


def test_the_student_keeps_the_promotion_rule_against_the_default(fast_metrics, model_settings):
    ok, why = promotion_check(fast_metrics, model_settings.artifact_dir)
    assert ok and "within 0.01" in why, why


def test_its_dev_metrics_reproduce_with_its_cpu_model(fast_settings, fast_metrics):
    from models.classifier import Classifier
    from models.data import artifact_splits
    from models.evaluate import evaluate

    if not (fast_settings.data_dir / "sentiment_train.csv").is_file():
        pytest.skip(f"training data not present at {fast_settings.data_dir}")
    clf = Classifier.from_settings(fast_settings, threads=2)
    assert clf.backend == "onnx-int8" and clf.model_version == json.loads(
        (fast_settings.artifact_dir / "config.json").read_text())["version"]
    sp = artifact_splits(fast_settings.data_dir, fast_settings.artifact_dir)
    got = evaluate(clf.predict_proba, sp.dev_sentiment, sp.dev_topic, sp.labels)
    for task, want in cpu_dev_summary(fast_metrics).items():
        assert got[task]["accuracy"] == pytest.approx(want["accuracy"], abs=2e-3)
