"""Calibration: one temperature per head, fitted on the dev split, shipped in the artifact.

The alerter weights each event by P(negative), so a probability of 0.8 should be right about 80 % of
the time. Fine-tuned encoders are usually over-confident; dividing the logits by a temperature T > 1
softens them without changing any argmax, so accuracy and F1 stay exactly as they were (Guo et al.,
2017). T is the one that minimises the negative log-likelihood of the dev labels.

The fit works from probabilities: ``log p`` differs from the logits by a constant per row, which
the softmax removes, so ``softmax(log p / T) == softmax(logits / T)`` for any backend's output.

``calibration.json`` in the artifact: ``{"sentiment": T, "topic": T, ...}`` (what was measured before
and after, on which split). An artifact without it is used uncalibrated (T = 1).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

CALIBRATION_FILE = "calibration.json"
ECE_BINS = 15
T_RANGE = (0.05, 20.0)


def scale(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities re-softened (T > 1) or sharpened (T < 1) by a temperature."""
    if temperature == 1.0:
        return probs
    z = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, y: Sequence[int]) -> float:
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), np.asarray(y)], 1e-12, 1.0))))


def fit_temperature(probs: np.ndarray, y: Sequence[int]) -> float:
    """The temperature minimising the dev negative log-likelihood (bounded search over log T)."""
    from scipy.optimize import minimize_scalar

    if len(y) == 0:
        raise ValueError("no rows to fit a temperature on")
    res = minimize_scalar(lambda lt: nll(scale(probs, float(np.exp(lt))), y),
                          bounds=tuple(np.log(T_RANGE)), method="bounded", options={"xatol": 1e-4})
    return round(float(np.exp(res.x)), 4)


def expected_calibration_error(probs: np.ndarray, y: Sequence[int], bins: int = ECE_BINS) -> float:
    """Top-label ECE: rows binned by confidence (equal-width bins); the row-weighted mean gap between
    each bin's accuracy and its mean confidence."""
    y = np.asarray(y)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            gap += sel.sum() * abs(correct[sel].mean() - conf[sel].mean())
    return round(float(gap / max(len(y), 1)), 4)


def read_temperatures(artifact_dir: Path) -> tuple[float, float]:
    """(sentiment T, topic T) shipped with the artifact; (1, 1) when it has no calibration file."""
    p = Path(artifact_dir) / CALIBRATION_FILE
    if not p.is_file():
        return 1.0, 1.0
    d = json.loads(p.read_text())
    temps = float(d["sentiment"]), float(d["topic"])
    if not all(T_RANGE[0] <= t <= T_RANGE[1] for t in temps):
        raise ValueError(f"{p}: temperatures {temps} outside {T_RANGE}")
    return temps
