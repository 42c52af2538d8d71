"""Re-label historical events with the current model (e.g. to compare a new model version)."""
from __future__ import annotations

from typing import Any, Protocol


class PredictionLike(Protocol):
    sentiment: str
    sentiment_scores: dict[str, float]
    topic: str
    topic_scores: list[tuple[str, float]]
    model_version: str


class ClassifierLike(Protocol):
    model_version: str

    def predict(self, texts: list[str], explain: bool = False) -> list[Any]: ...


def model_text(event: dict[str, Any]) -> str:
    """What the worker classifies: the text (titles are already part of a news summary)."""
    return str(event.get("text") or event.get("title") or "")


def rescore(events: list[dict[str, Any]], classifier: ClassifierLike) -> list[dict[str, Any]]:
    """Copies of ``events`` with sentiment, topic and model_version from ``classifier``; enrichment
    (tickers, novelty, duplicate_of) is kept, since it does not depend on the model."""
    if not events:
        return []
    preds = classifier.predict([model_text(e) for e in events], explain=False)
    out = []
    for ev, p in zip(events, preds):
        new = dict(ev)
        new.update(sentiment=p.sentiment, sentiment_scores=dict(p.sentiment_scores), topic=p.topic,
                   topic_scores=[{"label": l, "score": float(s)} for l, s in p.topic_scores],
                   model_version=p.model_version, explanation=[])
        out.append(new)
    return out
