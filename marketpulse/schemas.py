"""Event schemas on the wire (JSON on Kafka, documents in Elasticsearch).

``RawEvent`` is what producers send to the raw topics; ``LabeledEvent`` is what the workers emit
after enrichment and classification. ``marketpulse schemas export`` writes their JSON Schemas to
docs/schemas/ so producers in other languages can follow them.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SENTIMENTS = ("negative", "neutral", "positive")
Source = Literal["news", "social"]
Sentiment = Literal["negative", "neutral", "positive"]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def stable_id(source: str, url: str | None, text: str) -> str:
    """Id for events that come without one: same source + url (or text) -> same id."""
    basis = url.strip() if url and url.strip() else " ".join(text.split())
    return hashlib.sha256(f"{source}\x1f{basis}".encode()).hexdigest()[:32]


class RawEvent(BaseModel):
    """A news item or social post as it arrives."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    id: str = Field(..., min_length=1, max_length=256, description="stable producer-side id")
    source: Source
    source_name: str = Field(..., min_length=1, max_length=200, description="feed, site or network")
    published_at: datetime = Field(..., description="ISO-8601 with timezone; naive means UTC")
    text: str = Field(..., min_length=1, description="body text (posts) or summary (news)")
    title: str | None = Field(None, max_length=2000)
    url: str | None = Field(None, max_length=4000)
    author: str | None = Field(None, max_length=500)
    lang: str = Field("en", min_length=2, max_length=16)

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text is empty or whitespace")
        if "\x00" in v:
            raise ValueError("text contains NUL bytes")
        return v

    @field_validator("published_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return v if v.tzinfo else v.replace(tzinfo=timezone.utc)


class TickerMention(BaseModel):
    symbol: str
    relevance: float = Field(..., ge=0.0, le=1.0, description="1 = subject of the headline")
    matched: str = Field(..., description="the text that linked it: cashtag or company name")


class TopicScore(BaseModel):
    label: str
    score: float


class LabeledEvent(RawEvent):
    """A RawEvent after enrichment and classification."""

    sentiment: Sentiment
    sentiment_scores: dict[str, float]
    topic: str
    topic_scores: list[TopicScore] = Field(..., description="top-3 topics, best first")
    tickers: list[TickerMention] = []
    novelty: float = Field(100.0, ge=0.0, le=100.0, description="100 = nothing similar seen recently")
    duplicate_of: str | None = None
    explanation: list[str] = Field([], description="tokens that most raised P(negative)")
    model_version: str
    processed_at: datetime = Field(default_factory=utcnow)
    timings_ms: dict[str, float] = {}

    @property
    def doc_id(self) -> str:
        """Deterministic Elasticsearch _id: redelivery overwrites instead of duplicating."""
        return f"{self.source}:{self.id}"
