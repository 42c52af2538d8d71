"""Event-time windowing: per-key volume buckets with bounded lateness.

Every labeled event contributes to three kinds of keys: ``ticker:<SYMBOL>`` (weighted by the
ticker's relevance), ``topic:<label>`` and ``market``. A bucket ``[start, start + bucket_s)``
stays open until the watermark passes ``start + bucket_s + allowed_lateness_s``; later events for
it are dropped and counted. Redeliveries of an event already counted add nothing.

Near-duplicates (``duplicate_of`` set: retweets, syndicated copies) are *amplification*: they add
weight to the keys of the copy, but less and less per copy of the same story, and each author (or
feed without an author) adds at most one copy per bucket and key. A storm across many accounts
therefore raises the volume, one account or one feed repeating itself does not. See
``copy_factor`` and ``BucketStats.add_copy``.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from consumers.alerting.detector import to_epoch
from marketpulse.schemas import KeyType, LabeledEvent, doc_id

MARKET_KEY = "market"
MAX_TEXT_CHARS = 300


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


def event_weights(event: LabeledEvent, max_tickers: int = 10) -> dict[str, tuple[float, float]]:
    """(total, negative) volume this event adds to each of its keys; at most ``max_tickers`` ticker
    keys, the most relevant first, so one post full of cashtags cannot create thousands of keys."""
    p_neg = min(max(float(event.sentiment_scores.get("negative", 0.0)), 0.0), 1.0)
    weights: dict[str, tuple[float, float]] = {MARKET_KEY: (1.0, p_neg)}
    if event.topic:
        weights[topic_key(event.topic)] = (1.0, p_neg)
    relevance: dict[str, float] = {}
    for mention in event.tickers:  # a symbol matched twice counts once, at its best relevance
        k = ticker_key(mention.symbol)
        relevance[k] = max(relevance.get(k, 0.0), float(mention.relevance))
    ranked = sorted(((r, k) for k, r in relevance.items() if r > 0), key=lambda rk: -rk[0])  # stable: text order
    for r, k in ranked[:max_tickers]:
        weights[k] = (r, r * p_neg)
    return weights


def voice(event: LabeledEvent) -> str:
    """Who is speaking, for the amplification cap: the author, or the feed when there is none.
    Scoped by source and feed so one pseudonym on two networks stays two voices."""
    return f"{event.source}\x1f{event.source_name}\x1f{event.author or ''}"


def copy_factor(k: int) -> float:
    """Weight factor of the k-th counted copy (k >= 1) of one story in a bucket and key.

    The story's original is its first voice, so the k-th copy is the (k + 1)-th and weighs
    1/sqrt(k + 1): every copy adds less than an original, and N copies add about
    2·(sqrt(N + 1) - 1) originals (180 -> ~25, 10 000 -> ~198). Copies are correlated reactions
    to one story, so they must grow much slower than N; a log law (~ln N: 10 000 -> ~9) flattens
    so early that even a huge storm would stay invisible on busy keys such as ``market``.
    """
    return 1.0 / math.sqrt(k + 1)


@dataclass(frozen=True)
class AmplifiedRoot:
    """One story being copied in a bucket, for the alert record."""

    id: str  # the original's id (``duplicate_of`` of its copies)
    copies: int  # copies of it in the bucket, counted or not
    authors: int  # distinct authors/feeds whose copy of it counted
    text: str  # of its earliest copy in the bucket


@dataclass(frozen=True)
class Amplification:
    """What near-duplicate copies added to one key in one bucket."""

    copies: int = 0  # copies seen
    authors: int = 0  # copies that counted: at most one per author (feed without author)
    ignored: int = 0  # copies - authors: from a voice whose copy already counted here
    total: float = 0.0  # total volume they added (part of BucketStats.total)
    negative: float = 0.0  # negative volume they added (part of BucketStats.negative)
    top_roots: tuple[AmplifiedRoot, ...] = ()


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
    """Volume of one key in one bucket: originals plus the amplification weight of copies."""

    original_total: float = 0.0
    original_negative: float = 0.0
    events: int = 0  # originals
    # Min-heap on weight keeps the top contributors in O(log k) per event.
    _top: list[tuple[float, str, Contributor]] = field(default_factory=list)
    # Amplification. Only facts are stored; the weights are derived from them in a canonical
    # order (``_amplified``), so neither arrival order nor a restart changes the numbers.
    # voice -> its earliest copy here, the only one that counts: (published_at, uid, root, total, negative).
    _voices: dict[str, tuple[float, str, str, float, float]] = field(default_factory=dict)
    # root id -> [copies seen, published_at, uid, text] of its earliest copy here.
    _roots: dict[str, list[Any]] = field(default_factory=dict)
    _cache: tuple[float, float, dict[str, int]] | None = field(default=None, compare=False, repr=False)

    @property
    def total(self) -> float:
        return self.original_total + self._amplified()[0]

    @property
    def negative(self) -> float:
        return self.original_negative + self._amplified()[1]

    @property
    def share(self) -> float:
        total = self.total
        return self.negative / total if total > 0 else 0.0

    @property
    def copies(self) -> int:
        return sum(r[0] for r in self._roots.values())

    def add(self, total: float, negative: float, contributor: Contributor, keep: int) -> None:
        """Count one original event."""
        self.original_total += total
        self.original_negative += negative
        self.events += 1
        if keep <= 0 or negative <= 0:
            return
        item = (negative, contributor.id, contributor)
        if len(self._top) < keep:
            heapq.heappush(self._top, item)
        elif item[:2] > self._top[0][:2]:
            heapq.heapreplace(self._top, item)

    def add_copy(self, root: str, voice: str, uid: str, published_at: float, total: float,
                 negative: float, text: str) -> None:
        """Count one near-duplicate of ``root``. Only a voice's earliest copy here can count
        ("first" by event time, not arrival, so shuffled delivery gives the same result)."""
        self._cache = None
        when = (published_at, uid)
        r = self._roots.get(root)
        if r is None:
            self._roots[root] = [1, published_at, uid, text]
        else:
            r[0] += 1
            if when < (r[1], r[2]):
                r[1:] = [published_at, uid, text]
        mine = self._voices.get(voice)
        if mine is None or when < mine[:2]:
            self._voices[voice] = (published_at, uid, root, total, negative)

    def _amplified(self) -> tuple[float, float, dict[str, int]]:
        """(total, negative) added by copies and the counted copies per root."""
        if self._cache is None:
            per_root: dict[str, list[tuple[float, float, str]]] = {}
            for _, uid, root, total, negative in self._voices.values():
                per_root.setdefault(root, []).append((negative, total, uid))
            amp_total = amp_negative = 0.0
            for root in sorted(per_root):
                # Strongest copy first (ties by uid): a canonical order for the shrinking factors.
                ranked = sorted(per_root[root], key=lambda c: (-c[0], -c[1], c[2]))
                for k, (negative, total, _) in enumerate(ranked, 1):
                    f = copy_factor(k)
                    amp_total += f * total
                    amp_negative += f * negative
            self._cache = (amp_total, amp_negative, {r: len(c) for r, c in per_root.items()})
        return self._cache

    def amplification(self, keep: int = 5) -> Amplification:
        """Summary of the copies, with the ``keep`` roots most amplified (by counted copies,
        then all copies, then id)."""
        amp_total, amp_negative, counted = self._amplified()
        copies = self.copies
        authors = sum(counted.values())
        ranked = sorted(self._roots.items(), key=lambda kv: (-counted.get(kv[0], 0), -kv[1][0], kv[0]))
        top = tuple(AmplifiedRoot(id=root, copies=r[0], authors=counted.get(root, 0), text=r[3])
                    for root, r in ranked[:max(keep, 0)])
        return Amplification(copies=copies, authors=authors, ignored=copies - authors,
                             total=amp_total, negative=amp_negative, top_roots=top)

    def contributors(self) -> list[Contributor]:
        """Strongest first; ties broken by id so the order is reproducible."""
        return [c for _, _, c in sorted(self._top, key=lambda t: (-t[0], t[1]))]

    def to_dict(self) -> dict[str, Any]:
        # "total"/"negative" are the originals' volume, as in snapshots from before amplification.
        return {"total": self.original_total, "negative": self.original_negative, "events": self.events,
                "top": [c.to_dict() for c in self.contributors()],
                "amplification": {
                    "voices": {v: list(self._voices[v]) for v in sorted(self._voices)},
                    "roots": {r: list(self._roots[r]) for r in sorted(self._roots)},
                }}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BucketStats":
        st = cls(original_total=float(data["total"]), original_negative=float(data["negative"]),
                 events=int(data["events"]))
        st._top = [(c["weight"], c["id"], Contributor(**c)) for c in data["top"]]
        heapq.heapify(st._top)
        amp = data.get("amplification") or {}  # absent in snapshots from before amplification
        st._voices = {v: (float(c[0]), str(c[1]), str(c[2]), float(c[3]), float(c[4]))
                      for v, c in amp.get("voices", {}).items()}
        st._roots = {r: [int(x[0]), float(x[1]), str(x[2]), str(x[3])] for r, x in amp.get("roots", {}).items()}
        return st


@dataclass(frozen=True)
class ClosedBucket:
    start: float
    end: float
    stats: dict[str, BucketStats]  # key -> stats; keys without events are absent


class BucketAggregator:
    """Open buckets by start time; closes them in order as the watermark advances."""

    def __init__(self, bucket_s: int, allowed_lateness_s: int = 0, max_contributors: int = 5,
                 max_tickers_per_event: int = 10):
        self.bucket_s = bucket_s
        self.allowed_lateness_s = allowed_lateness_s
        self.max_contributors = max_contributors
        self.max_tickers_per_event = max_tickers_per_event
        self.open: dict[int, dict[str, BucketStats]] = {}
        self._seen: dict[int, set[str]] = {}  # event ids per open bucket, to ignore redeliveries
        self.closed_until: int | None = None  # every bucket starting before this is closed
        self.max_event_time: float | None = None
        self.late_dropped = 0
        self.duplicates_ignored = 0  # redeliveries of an event already counted
        self.copies = 0  # near-duplicates taken as amplification

    def bucket_start(self, ts: float) -> int:
        return int(ts // self.bucket_s) * self.bucket_s

    def add(self, event: LabeledEvent) -> bool:
        """Count one event (a near-duplicate as amplification); False when it was too late or a
        redelivery."""
        ts = to_epoch(event.published_at)
        start = self.bucket_start(ts)
        if self.closed_until is not None and start < self.closed_until:
            self.late_dropped += 1
            return False
        uid = doc_id(event.source, event.id)
        seen = self._seen.setdefault(start, set())
        if uid in seen:
            self.duplicates_ignored += 1
            return False
        seen.add(uid)
        self.max_event_time = ts if self.max_event_time is None else max(self.max_event_time, ts)
        text = (event.title or event.text or "").strip()[:MAX_TEXT_CHARS]
        bucket = self.open.setdefault(start, {})
        if event.duplicate_of:
            self.copies += 1
            who = voice(event)
            for key, (total, negative) in event_weights(event, self.max_tickers_per_event).items():
                bucket.setdefault(key, BucketStats()).add_copy(event.duplicate_of, who, uid, ts, total, negative, text)
            return True
        for key, (total, negative) in event_weights(event, self.max_tickers_per_event).items():
            contributor = Contributor(id=event.id, source=event.source, source_name=event.source_name,
                                      text=text, weight=round(negative, 6), published_at=ts)
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
            "copies": self.copies,
        }

    def load(self, data: dict[str, Any]) -> None:
        self.open = {int(s): {k: BucketStats.from_dict(st) for k, st in b.items()} for s, b in data["open"].items()}
        self._seen = {int(s): set(ids) for s, ids in data["seen"].items()}
        self.closed_until = data["closed_until"]
        self.max_event_time = data["max_event_time"]
        self.late_dropped = int(data["late_dropped"])
        self.duplicates_ignored = int(data["duplicates_ignored"])
        self.copies = int(data.get("copies", 0))
