"""Fixtures for the model tests: the committed default artifact, built once per session
(``python -m models.build`` output in build_dir, built on demand if missing)."""
from __future__ import annotations

import pytest

from marketpulse.settings import Settings

@pytest.fixture(scope="session")
def model_settings():
    return Settings().model


def load_classifier(ms, backend: str, **kw):
    from models.classifier import Classifier

    return Classifier.from_settings(ms, backend=backend, **kw)


@pytest.fixture(scope="session")
def torch_clf(model_settings):
    return load_classifier(model_settings, "torch", threads=2)


@pytest.fixture(scope="session")
def onnx_clf(model_settings):
    return load_classifier(model_settings, "onnx", threads=2)


@pytest.fixture(scope="session")
def int8_clf(model_settings):
    return load_classifier(model_settings, "onnx-int8", threads=2)
