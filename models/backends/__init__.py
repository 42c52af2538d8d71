"""Inference backends. Each takes padded ``input_ids``/``attention_mask`` (int64, shape
(batch, seq)) and returns float32 numpy arrays ``(sentiment_logits, topic_logits, embedding)``."""
from __future__ import annotations

from typing import Protocol

import numpy as np

BACKENDS = ("torch", "onnx", "onnx-int8", "tensorrt")


class Backend(Protocol):
    name: str

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
