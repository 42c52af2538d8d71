"""Calibration: a temperature per head, fitted on dev, that softens over-confident probabilities
without changing any prediction; shipped in the artifact and applied by every backend."""
from __future__ import annotations

import json

import numpy as np
import pytest

from models.calibration import (
    CALIBRATION_FILE,
    expected_calibration_error,
    fit_temperature,
    read_temperatures,
    scale,
)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _overconfident(n=4000, k=3, true_t=2.5, seed=0):
    """Labels drawn from softmax(z / true_t), probabilities reported as softmax(z): over-confident by
    a known temperature."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 4, (n, k))
    calibrated = _softmax(z / true_t)
    y = np.array([rng.choice(k, p=p) for p in calibrated])
    return _softmax(z), y


def test_scaling_never_changes_the_prediction_and_softens_above_one():
    probs, _ = _overconfident(200)
    soft = scale(probs, 2.0)
    assert (soft.argmax(1) == probs.argmax(1)).all()
    assert (soft.max(1) <= probs.max(1) + 1e-9).all()
    assert np.allclose(soft.sum(1), 1.0)
    assert scale(probs, 1.0) is probs


def test_scaling_probabilities_equals_scaling_the_logits():
    z = np.random.default_rng(1).normal(0, 3, (50, 20))
    assert np.allclose(scale(_softmax(z), 1.7), _softmax(z / 1.7), atol=1e-9)


def test_the_fit_recovers_a_known_over_confidence():
    probs, y = _overconfident(true_t=2.5)
    assert fit_temperature(probs, y) == pytest.approx(2.5, rel=0.12)


def test_calibrated_probabilities_have_a_small_error_and_over_confident_ones_a_large_one():
    probs, y = _overconfident()
    t = fit_temperature(probs, y)
    before, after = expected_calibration_error(probs, y), expected_calibration_error(scale(probs, t), y)
    assert before > 0.08 and after < 0.03


def test_expected_calibration_error_of_certain_and_right_is_zero_and_of_certain_and_wrong_is_one():
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs, [0, 1]) == 0.0
    assert expected_calibration_error(probs, [1, 0]) == 1.0


def test_an_artifact_without_a_calibration_file_is_used_as_is(tmp_path):
    assert read_temperatures(tmp_path) == (1.0, 1.0)


def test_a_calibration_file_with_an_absurd_temperature_is_refused(tmp_path):
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"sentiment": 0.0, "topic": 1.2}))
    with pytest.raises(ValueError, match="outside"):
        read_temperatures(tmp_path)


def test_the_committed_artifact_ships_temperatures_that_every_backend_applies(model_settings, int8_clf):
    temps = read_temperatures(model_settings.artifact_dir)
    assert (model_settings.artifact_dir / CALIBRATION_FILE).is_file()
    assert int8_clf.temperatures == temps
    texts = ["$TSLA recalls 2 million cars, shares slide", "Fed holds rates steady"]
    s, t = int8_clf.predict_proba(texts)
    int8_clf.temperatures = (1.0, 1.0)
    try:
        s_raw, t_raw = int8_clf.predict_proba(texts)
    finally:
        int8_clf.temperatures = temps
    assert np.allclose(s, scale(s_raw, temps[0]), atol=1e-5) and np.allclose(t, scale(t_raw, temps[1]), atol=1e-5)
    assert (s.argmax(1) == s_raw.argmax(1)).all()
