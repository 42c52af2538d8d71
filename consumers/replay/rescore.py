"""Re-label historical events with the current model (e.g. to compare a new model version)."""
from __future__ import annotations

from typing import Any, Protocol

from marketpulse.schemas import LabeledEvent
from marketpulse.text import event_model_text


class ClassifierLike(Protocol):
    model_version: str

    def predict(self, texts: list[str], explain: bool = False) -> list[Any]: ...


def rescore(events: list[LabeledEvent], classifier: ClassifierLike) -> list[LabeledEvent]:
    """Copies of ``events`` with sentiment, topic and model_version from ``classifier``, which sees
    exactly the text the live worker classified (``event_model_text``). Enrichment (tickers,
    novelty, duplicate_of) is kept, since it does not depend on the model."""
    if not events:
        return []
    preds = classifier.predict([event_model_text(e) for e in events], explain=False)
    return [LabeledEvent.model_validate({
        **ev.model_dump(), "sentiment": p.sentiment, "sentiment_scores": dict(p.sentiment_scores), "topic": p.topic,
        "topic_scores": [{"label": l, "score": float(s)} for l, s in p.topic_scores],
        "model_version": p.model_version, "explanation": []}) for ev, p in zip(events, preds)]
