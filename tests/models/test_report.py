"""The report after training: temperatures fitted on dev only, targets judged as stated, and a card
whose tables survive topic names with pipes in them."""
from __future__ import annotations

import numpy as np

from models.data import Example, LabelMaps, Splits
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
    sp = Splits(LabelMaps(("negative", "neutral", "positive"), tuple(f"T{i}" for i in range(5))), [],
                _rows(600, 3, "sentiment", rng), _rows(600, 5, "topic", rng),
                _rows(600, 3, "sentiment", rng), _rows(600, 5, "topic", rng))
    probs = {"torch": {"dev": (_probs(sp.dev_sentiment, "sentiment", 3, rng, 4.0), _probs(sp.dev_topic, "topic", 5, rng, 4.0)),
                       "test": (_probs(sp.test_sentiment, "sentiment", 3, rng, 4.0), _probs(sp.test_topic, "topic", 5, rng, 4.0))}}
    c = calibrate(probs, sp)
    assert c["sentiment"] > 1.5 and c["topic"] > 1.5  # over-confident by construction: softened
    for split in ("dev", "test"):
        for head in ("sentiment", "topic"):
            e = c["ece"]["torch_fp32"][split][head]
            assert e["after"] < e["before"]


def test_targets_are_met_only_at_or_above_them():
    m = {"sentiment": {"weighted_f1": TARGETS["sentiment_weighted_f1"], "per_class_f1": {"negative": 0.8}},
         "topic": {"accuracy": 0.95}}
    got = target_check(m)
    assert got["sentiment_weighted_f1"]["met"] and got["topic_accuracy"]["met"]
    assert not got["negative_f1"]["met"] and got["negative_f1"]["value"] == 0.8


def test_an_artifact_without_a_test_split_says_so_instead_of_inventing_one():
    assert "None: this artifact was trained without a test split" in _test_section({})
