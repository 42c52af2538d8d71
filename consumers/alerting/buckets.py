"""Event-time windowing: per-key volume buckets with bounded lateness.

Every labeled event contributes to three kinds of keys: ``ticker:<SYMBOL>`` (weighted by the
ticker's relevance), ``topic:<label>`` and ``market``. A bucket ``[start, start + bucket_s)``
stays open until the watermark passes ``start + bucket_s + allowed_lateness_s``; later events for
it are dropped and counted. Near-duplicates (``duplicate_of`` set) and redeliveries of an event
already counted add nothing, so one story syndicated fifty times is one story.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Literal, Protocol

from consumers.alerting.detector import to_epoch

KeyType = Literal["ticker", "topic", "market"]
MARKET_KEY = "market"
MAX_TEXT_CHARS = 300


class MentionLike(Protocol):
    symbol: str
    relevance: float


class EventLike(Protocol):
    """The fields of ``marketpulse.schemas.LabeledEvent`` the windowing reads."""

    id: str
    source: str
    source_name: str
    published_at: datetime
    text: str
    title: str | None
    sentiment_scores: dict[str, float]
    topic: str
    tickers: list[Any]
    duplicate_of: str | None


def ticker_key(symbol: str) -> str:
    return f"ticker:{symbol.upper()}"


def topic_key(topic: str) -> str:
    return f"topic:{topic}"


def key_type(key: str) -> KeyType:
    if key == MARKET_KEY:
        return "market"
    kind = key.split(":", 1)[0]
    if kind not in ("ticker", "topic"):
        raise ValueError(f"unknown key {key!r}")
    return kind  # type: ignore[return-value]


def key_value(key: str) -> str | None:
    """``AAPL`` for ``ticker:AAPL``, ``Earnings`` for ``topic:Earnings``, None for the market."""
    return None if key == MARKET_KEY else key.split(":", 1)[1]


def event_weights(event: EventLike) -> dict[str, tuple[float, float]]:
    """(total, negative) volume this event adds to each of its keys."""
    p_neg = min(max(float(event.sentiment_scores.get("negative", 0.0)), 0.0), 1.0)
    weights: dict[str, tuple[float, float]] = {MARKET_KEY: (1.0, p_neg)}
    if event.topic:
        weights[topic_key(event.topic)] = (1.0, p_neg)
    relevance: dict[str, float] = {}
    for mention in event.tickers:  # a symbol matched twice counts once, at its best relevance
        k = ticker_key(mention.symbol)
        relevance[k] = max(relevance.get(k, 0.0), float(mention.relevance))
    for k, r in relevance.items():
        if r > 0:
            weights[k] = (r, r * p_neg)
    return weights


@dataclass(frozen=True)
class Contributor:
    """One event behind a bucket's negative volume, for the alert record."""

    id: str
    source: str
    source_name: str
    text: str
    weight: float  # negative volume it added to the key
    published_at: float

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class BucketStats:
    total: float = 0.0
    negative: float = 0.0
    events: int = 0
    # Min-heap on weight keeps the top contributors in O(log k) per event.
    _top: list[tuple[float, str, Contributor]] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.negative / self.total if self.total > 0 else 0.0

    def add(self, total: float, negative: float, contributor: Contributor, keep: int) -> None:
        self.total += total
        self.negative += negative
        self.events += 1
        if keep <= 0 or negative <= 0:
            return
        item = (negative, contributor.id, contributor)
        if len(self._top) < keep:
            heapq.heappush(self._top, item)
        elif item[:2] > self._top[0][:2]:
            heapq.heapreplace(self._top, item)

    def contributors(self) -> list[Contributor]:
        """Strongest first; ties broken by id so the order is reproducible."""
        return [c for _, _, c in sorted(self._top, key=lambda t: (-t[0], t[1]))]

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "negative": self.negative, "events": self.events,
                "top": [c.to_dict() for c in self.contributors()]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BucketStats":
        st = cls(total=float(data["total"]), negative=float(data["negative"]), events=int(data["events"]))
        st._top = [(c["weight"], c["id"], Contributor(**c)) for c in data["top"]]
        heapq.heapify(st._top)
        return st


@dataclass(frozen=True)
class ClosedBucket:
    start: float
    end: float
    stats: dict[str, BucketStats]  # key -> stats; keys without events are absent


class BucketAggregator:
    """Open buckets by start time; closes them in order as the watermark advances."""

    def __init__(self, bucket_s: int, allowed_lateness_s: int = 0, max_contributors: int = 5):
        self.bucket_s = bucket_s
        self.allowed_lateness_s = allowed_lateness_s
        self.max_contributors = max_contributors
        self.open: dict[int, dict[str, BucketStats]] = {}
        self._seen: dict[int, set[str]] = {}  # event ids per open bucket, to ignore redeliveries
        self.closed_until: int | None = None  # every bucket starting before this is closed
        self.max_event_time: float | None = None
        self.late_dropped = 0
        self.duplicates_ignored = 0

    def bucket_start(self, ts: float) -> int:
        return int(ts // self.bucket_s) * self.bucket_s

    def add(self, event: EventLike) -> bool:
        """Count one event; False when it was too late, a duplicate or a redelivery."""
        ts = to_epoch(event.published_at)
        start = self.bucket_start(ts)
        if self.closed_until is not None and start < self.closed_until:
            self.late_dropped += 1
            return False
        if event.duplicate_of:
            self.duplicates_ignored += 1
            return False
        uid = f"{event.source}:{event.id}"
        seen = self._seen.setdefault(start, set())
        if uid in seen:
            self.duplicates_ignored += 1
            return False
        seen.add(uid)
        self.max_event_time = ts if self.max_event_time is None else max(self.max_event_time, ts)
        text = (event.title or event.text or "").strip()
        bucket = self.open.setdefault(start, {})
        for key, (total, negative) in event_weights(event).items():
            contributor = Contributor(id=event.id, source=event.source, source_name=event.source_name,
                                      text=text[:MAX_TEXT_CHARS], weight=round(negative, 6), published_at=ts)
            bucket.setdefault(key, BucketStats()).add(total, negative, contributor, self.max_contributors)
        return True

    def close_until(self, watermark: float, first: int | None = None) -> Iterable[ClosedBucket]:
        """Close every bucket whose end + allowed lateness <= watermark, in time order,
        including empty ones from ``first`` (or the oldest open bucket) on."""
        starts = first if first is not None else self.closed_until
        if starts is None:
            starts = min(self.open) if self.open else None
        if starts is None:
            return
        s = starts
        # A late bucket opened before `first` (possible only after a restart) is closed first.
        for old in sorted(b for b in self.open if b < s):
            self._seen.pop(old, None)
            yield ClosedBucket(start=float(old), end=float(old + self.bucket_s), stats=self.open.pop(old))
        while s + self.bucket_s <= watermark - self.allowed_lateness_s:
            stats = self.open.pop(s, {})
            self._seen.pop(s, None)
            self.closed_until = s + self.bucket_s
            yield ClosedBucket(start=float(s), end=float(s + self.bucket_s), stats=stats)
            s += self.bucket_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "open": {str(s): {k: st.to_dict() for k, st in b.items()} for s, b in self.open.items()},
            "seen": {str(s): sorted(ids) for s, ids in self._seen.items()},
            "closed_until": self.closed_until,
            "max_event_time": self.max_event_time,
            "late_dropped": self.late_dropped,
            "duplicates_ignored": self.duplicates_ignored,
        }

    def load(self, data: dict[str, Any]) -> None:
        self.open = {int(s): {k: BucketStats.from_dict(st) for k, st in b.items()} for s, b in data["open"].items()}
        self._seen = {int(s): set(ids) for s, ids in data["seen"].items()}
        self.closed_until = data["closed_until"]
        self.max_event_time = data["max_event_time"]
        self.late_dropped = int(data["late_dropped"])
        self.duplicates_ignored = int(data["duplicates_ignored"])
