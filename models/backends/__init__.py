"""Inference backends. Each takes padded ``input_ids``/``attention_mask`` (int64, shape
(batch, seq)) and returns float32 numpy arrays ``(sentiment_logits, topic_logits, embedding)``
from its ``run`` method."""
from __future__ import annotations

BACKENDS = ("torch", "onnx", "onnx-int8", "tensorrt")
