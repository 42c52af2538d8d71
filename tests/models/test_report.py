"""The report after training: temperatures fitted on dev only, targets judged as stated, and a card
whose tables survive topic names with pipes in them."""
from __future__ import annotations

import numpy as np

from models.data import Example
from models.report import TARGETS, _test_section, calibrate, target_check


def _rows(n, k, task, rng):
    return [Example(f"{task}{i}", **{task: int(rng.integers(0, k))}) for i in range(n)]


def _probs(rows, task, k, rng, sharpness):
    """Right about 70 % of the time, with a confidence set by ``sharpness``."""
    z = rng.normal(0, 1, (len(rows), k))
    for r, e in zip(z, rows):
        if rng.random() < 0.7:
            r[getattr(e, task)] += 2.0
    e = np.exp(sharpness * z)
    return e / e.sum(1, keepdims=True)


def test_temperatures_are_fitted_on_dev_and_the_error_is_reported_per_backend_and_split():
    rng = np.random.default_rng(0)
    rows = {split: (_rows(600, 3, "sentiment", rng), _rows(600, 5, "topic", rng)) for split in ("dev", "test")}
    truth = {split: ([e.sentiment for e in s], [e.topic for e in t]) for split, (s, t) in rows.items()}
    probs = {"torch": {split: (_probs(s, "sentiment", 3, rng, 4.0), _probs(t, "topic", 5, rng, 4.0))
                       for split, (s, t) in rows.items()}}
    c = calibrate(probs, truth)
    assert c["sentiment"] > 1.5 and c["topic"] > 1.5  # over-confident by construction: softened
    for split in ("dev", "test"):
        for head in ("sentiment", "topic"):
            e = c["ece"]["torch_fp32"][split][head]
            assert e["after"] < e["before"]

    # the test split's labels play no part in the fit
    shuffled = {**truth, "test": (truth["test"][0][::-1], truth["test"][1][::-1])}
    again = calibrate(probs, shuffled)
    assert (again["sentiment"], again["topic"]) == (c["sentiment"], c["topic"])


def test_targets_are_met_only_at_or_above_them():
    m = {"sentiment": {"weighted_f1": TARGETS["sentiment_weighted_f1"], "per_class_f1": {"negative": 0.8}},
         "topic": {"accuracy": 0.95}}
    got = target_check(m)
    assert got["sentiment_weighted_f1"]["met"] and got["topic_accuracy"]["met"]
    assert not got["negative_f1"]["met"] and got["negative_f1"]["value"] == 0.8


def test_an_artifact_without_a_test_split_says_so_instead_of_inventing_one():
    assert "None: this artifact was trained without a test split" in _test_section({})


def test_a_short_training_run_reports_held_out_metrics_calibration_and_the_picture(model_settings, tmp_path):
    import json

    import pytest

    from models.calibration import read_temperatures
    from models.report import finalize
    from models.train import TrainConfig, train

    if not (model_settings.data_dir / "sentiment_train.csv").is_file():
        pytest.skip(f"training data not found in {model_settings.data_dir}")
    art = tmp_path / "artifact"
    train(model_settings.data_dir, art, "report-test", TrainConfig(layers=1, limit_train=64, max_steps=2,
                                                                   evals_per_epoch=1), "test", progress=False)
    metrics = finalize(art, model_settings.data_dir, tmp_path / "build", run_export=False)
    test = metrics["test"]["torch_fp32"]
    assert test["sentiment"]["n"] == metrics["split"]["test_rows"]["sentiment"] > 0
    lo, hi = test["topic"]["intervals_95"]["accuracy"]
    assert lo <= test["topic"]["accuracy"] <= hi
    assert json.loads((art / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert read_temperatures(art) == (metrics["calibration"]["sentiment"], metrics["calibration"]["topic"])
    card = (art / "MODEL_CARD.md").read_text()
    assert "## Test metrics (held out)" in card and "Energy \\| Oil" in card
    assert (art / "confusion_matrices.png").read_bytes()[:4] == b"\x89PNG"


def test_promotion_replaces_a_model_only_if_neither_head_loses_more_than_001_dev_accuracy(model_settings, tmp_path):
    import copy
    import json

    from models.report import promotion_check

    shipped = json.loads((model_settings.artifact_dir / "metrics.json").read_text())
    key = "onnx_int8" if shipped["int8"]["accepted"] else "onnx_fp32"

    def candidate(topic_drop=0.0, **split):
        m = copy.deepcopy(shipped)
        m["version"] = "candidate"
        m[key]["topic"]["accuracy"] -= topic_drop
        m["split"].update(split)
        return m

    assert promotion_check(candidate(), model_settings.artifact_dir)[0]
    assert promotion_check(candidate(0.009), model_settings.artifact_dir)[0]
    ok, why = promotion_check(candidate(0.011), model_settings.artifact_dir)
    assert not ok and "candidate vs " + shipped["version"] in why
    # other dev rows: the accuracies say nothing about each other, so the check does not stand in the way
    ok, why = promotion_check(candidate(0.05, seed=shipped["split"]["seed"] + 1), model_settings.artifact_dir)
    assert ok and "another split" in why
    assert promotion_check(candidate(0.05), tmp_path) == (True, f"nothing at {tmp_path} to compare with")
