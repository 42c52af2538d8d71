"""Event schemas on the wire (JSON on Kafka, documents in Elasticsearch).

``RawEvent`` is what producers send to the raw topics; ``LabeledEvent`` is what the workers emit
after enrichment and classification. ``marketpulse schemas export`` writes their JSON Schemas to
docs/schemas/ so producers in other languages can follow them.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SENTIMENTS = ("negative", "neutral", "positive")
Source = Literal["news", "social"]
Sentiment = Literal["negative", "neutral", "positive"]
MAX_ID_BYTES = 256
KeyType = Literal["ticker", "topic", "market"]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def doc_id(source: str, event_id: str) -> str:
    """An event's id everywhere downstream (Kafka key of labeled events, Elasticsearch _id, alert
    buckets): redelivery overwrites instead of duplicating."""
    return f"{source}:{event_id}"


def stable_id(source: str, url: str | None, text: str) -> str:
    """Id for events that come without one: same source + url (or text) -> same id."""
    basis = url.strip() if url and url.strip() else " ".join(text.split())
    return hashlib.sha256(f"{source}\x1f{basis}".encode()).hexdigest()[:32]


class RawEvent(BaseModel):
    """A news item or social post as it arrives."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    id: str = Field(..., min_length=1, max_length=256,
                    description="stable producer-side id; at most 256 UTF-8 bytes")
    source: Source
    source_name: str = Field(..., min_length=1, max_length=200, description="feed, site or network")
    published_at: datetime = Field(..., description="ISO-8601 with timezone; naive means UTC")
    text: str = Field(..., min_length=1, description="body text (posts) or summary (news)")
    title: str | None = Field(None, max_length=2000)
    url: str | None = Field(None, max_length=4000)
    author: str | None = Field(None, max_length=500)
    lang: str = Field("en", min_length=2, max_length=16)

    @field_validator("id")
    @classmethod
    def _id_fits_a_document_id(cls, v: str) -> str:
        # It becomes the Elasticsearch _id ("source:id"), which may hold at most 512 bytes.
        size = len(v.encode("utf-8"))
        if size > MAX_ID_BYTES:
            raise ValueError(f"id is {size} bytes in UTF-8, limit {MAX_ID_BYTES}")
        return v

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
        v = v if v.tzinfo else v.replace(tzinfo=timezone.utc)
        try:
            v.astimezone(timezone.utc)  # 0001-01-01T00:00+14:00 has no UTC time: refuse it here, once
        except OverflowError:
            raise ValueError("published_at is out of range once converted to UTC") from None
        return v


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
    explanation: list[str] = Field([], description="words that most raised P(negative), best first; empty unless "
                                                   "the worker's model.explain_negative is on")
    model_version: str
    processed_at: datetime = Field(default_factory=utcnow)
    timings_ms: dict[str, float] = {}

    @property
    def doc_id(self) -> str:
        return doc_id(self.source, self.id)


# -- alerts (the alerts topic and index, webhooks, replays) ---------------------------------------
class TopEvent(BaseModel):
    id: str
    source: str
    source_name: str
    text: str
    weight: float = Field(..., description="negative volume it added to the key")
    published_at: datetime
    explanation: list[str] = Field([], description="words of text that most raised P(negative), best first; "
                                                   "empty when alerts.explain_top_events is off or the model "
                                                   "could not explain it")


class AmplifiedRoot(BaseModel):
    """An original story whose copies are in the bucket."""

    id: str = Field(..., description="id of the original story; its copies have duplicate_of = this id")
    copies: int = Field(..., description="copies of it in the bucket, counted or not")
    authors: int = Field(..., description="distinct authors (feeds, when there is no author) whose copy counted")
    text: str = Field(..., description="title or text of its earliest copy in the bucket")


class Amplification(BaseModel):
    """Near-duplicate copies (retweets, syndication) in the bucket that produced the record.

    Each author, or feed without an author, adds at most one copy per bucket and key; the k-th
    counted copy of a story weighs 1/sqrt(k + 1) of an original."""

    copies: int = Field(..., description="near-duplicate copies of any story")
    authors: int = Field(..., description="copies that counted: one per distinct author or feed")
    ignored: int = Field(..., description="copies from an author or feed whose copy already counted in the bucket")
    weight: float = Field(..., description="negative volume the copies added (included in observed)")
    total_weight: float = Field(..., description="total volume the copies added (included in total_volume)")
    top_roots: list[AmplifiedRoot] = Field([], description="the most amplified stories, most counted authors first")


class Alert(BaseModel):
    id: str
    key: str = Field(..., description="ticker:AAPL, topic:Earnings or market")
    key_type: KeyType
    status: Literal["opened", "escalated"] = "opened"
    window_start: datetime = Field(..., description="start of the bucket where the incident opened")
    window_end: datetime = Field(..., description="end of the bucket that produced this record")
    observed: float = Field(..., description="negative volume in the bucket")
    expected: float = Field(..., description="baseline negative volume for the bucket")
    total_volume: float | None = None
    negative_share: float | None = None
    expected_share: float | None = None
    score: float
    severity: Literal["warning", "critical"]
    top_events: list[TopEvent] = Field([], description="strongest negative original events (not copies)")
    amplification: Amplification | None = Field(
        None, description="what near-duplicate copies added to the bucket; None when there were none")
    es_query: dict[str, Any] = Field(..., description="search body for the events alias")
    drilldown: str = Field(..., description="the same filter as a Lucene query string")
