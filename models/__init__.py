"""Model training, evaluation, export and inference backends.

``from models import Classifier`` is the inference API (see ``models.classifier``); it is imported on
first use so that importing any other part of ``models`` (the CLI's ``--help`` among them) stays light.
"""
from __future__ import annotations

__all__ = ["Classifier", "Prediction"]


def __getattr__(name: str):
    if name in __all__:
        from models import classifier

        return getattr(classifier, name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")
