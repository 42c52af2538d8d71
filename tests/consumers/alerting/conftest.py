"""Builders shared by the alerting specifications."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Callable

import pytest

from marketpulse.schemas import LabeledEvent

T0 = datetime(2024, 1, 9, 15, 0, tzinfo=timezone.utc)  # a Tuesday, during US market hours


def _event(id: str, at: datetime | float = 0.0, *, p_neg: float = 0.9, topic: str = "Earnings",
           tickers: list[tuple[str, float]] | None = None, duplicate_of: str | None = None,
           text: str | None = None, source: str = "news") -> LabeledEvent:
    when = at if isinstance(at, datetime) else T0 + timedelta(seconds=float(at))
    rest = (1.0 - p_neg) / 2
    return LabeledEvent(
        id=id, source=source, source_name="wire", published_at=when, text=text or f"headline {id}",
        sentiment="negative" if p_neg >= 0.5 else "neutral",
        sentiment_scores={"negative": p_neg, "neutral": rest, "positive": rest},
        topic=topic, topic_scores=[{"label": topic, "score": 0.9}],
        tickers=[{"symbol": s, "relevance": r, "matched": f"${s}"} for s, r in (tickers or [])],
        duplicate_of=duplicate_of, model_version="test",
    )


@pytest.fixture
def make_event() -> Callable[..., LabeledEvent]:
    return _event


@pytest.fixture
def t0() -> datetime:
    return T0


