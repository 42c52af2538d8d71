"""TensorRT backend: engine build + parity with ONNX Runtime fp32. Needs tensorrt and a CUDA GPU."""
from __future__ import annotations

import numpy as np
import pytest

from models.backends.tensorrt_backend import availability

pytestmark = pytest.mark.gpu

TEXTS = [
    "Fed raises rates by 75 basis points, signals more hikes ahead",
    "Tesla shares plunge 12% after disappointing deliveries",
    "JPMorgan raises dividend to $1.05 per share",
    "Pfizer to acquire Seagen in $43 billion deal",
    "Gold climbs to record on safe-haven demand",
    "Crash",
]


@pytest.fixture(scope="module")
def trt_clf(model_settings):
    reason = availability()
    if reason:
        pytest.skip(f"TensorRT backend not testable here: {reason}")
    from models.classifier import Classifier

    return Classifier.from_settings(model_settings, backend="tensorrt")


def test_engine_is_cached_by_gpu_trt_and_model_version(trt_clf, model_settings):
    import tensorrt as trt

    path = trt_clf._backend.engine_file
    assert path.is_file() and path.parent.parent == model_settings.build_dir
    assert trt_clf.model_version in path.name and f"trt{trt.__version__}" in path.name


def test_fp16_engine_matches_onnx_fp32(trt_clf, onnx_clf):
    ref, got = onnx_clf.predict_proba(TEXTS * 50), trt_clf.predict_proba(TEXTS * 50)  # > one profile batch
    for r, g in zip(ref, got):
        assert np.mean(r.argmax(1) == g.argmax(1)) >= 0.95
        np.testing.assert_allclose(r, g, atol=2e-2)
