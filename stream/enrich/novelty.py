"""Near-duplicate detection over a recent window (MinHash + LSH banding).

Why MinHash: its estimate is a Jaccard similarity, which maps directly onto a novelty score
(``100 * (1 - best similarity)``), and LSH banding makes the lookup independent of window size.

* Text is canonicalised first (lower case, URLs, ``RT @handle:`` prefixes, handles and punctuation
  removed) so the same headline from two feeds, or a retweet, compares equal.
* Shingles are 5-byte windows of the canonical UTF-8 text, hashed with a vectorised polynomial hash:
  robust for short headlines where one changed word would wipe out most word n-grams.
* 128 multiply-shift hash functions with fixed seeds (no Python ``hash()``), 32 bands x 4 rows:
  pairs with Jaccard 0.5 become candidates with probability ~0.87, unrelated pairs (0.1) almost never.
* Memory is bounded: entries are evicted by count (``window_size``) and age (``window_seconds``).
"""
from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from datetime import datetime

import numpy as np

NUM_PERM = 128
BANDS = 32
ROWS = NUM_PERM // BANDS
SHINGLE = 5
_SEED = 0x6D61726B  # fixed: signatures must be identical across processes and restarts

_rng = np.random.default_rng(_SEED)
_A = _rng.integers(1, 2**63, size=NUM_PERM, dtype=np.uint64) | np.uint64(1)  # odd multipliers
_B = _rng.integers(0, 2**63, size=NUM_PERM, dtype=np.uint64)
_BASE = np.uint64(1099511628211)  # FNV prime, a good odd multiplier for the rolling hash

_RT = re.compile(r"^\s*rt\s+@\w+:?\s*", re.IGNORECASE)
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_HANDLE = re.compile(r"@\w+")
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def canonical(text: str) -> str:
    text = _RT.sub("", text)
    text = _URL.sub(" ", text)
    text = _HANDLE.sub(" ", text)
    return " ".join(_NON_WORD.sub(" ", text.lower()).split())


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads the structure of the rolling hash over all 64 bits."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def shingle_hashes(canon: str) -> np.ndarray:
    data = np.frombuffer(canon.encode("utf-8"), dtype=np.uint8).astype(np.uint64)
    if data.size == 0:
        return data
    k = min(SHINGLE, data.size)
    n = data.size - k + 1
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i in range(k):
            h = h * _BASE + data[i : i + n]
        return np.unique(_mix(h))


def signature(canon: str) -> np.ndarray | None:
    """MinHash signature (NUM_PERM uint32 values), or None for text with nothing to compare."""
    sh = shingle_hashes(canon)
    if sh.size == 0:
        return None
    with np.errstate(over="ignore"):
        v = (sh[:, None] * _A[None, :] + _B[None, :]) >> np.uint64(32)
    return v.min(axis=0).astype(np.uint32)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of the two shingle sets."""
    return float(np.count_nonzero(a == b)) / NUM_PERM


@dataclass
class _Entry:
    seq: int
    event_id: str
    root_id: str  # the first event of its duplicate cluster
    ts: float
    key: str | None
    sig: np.ndarray
    bands: list[bytes]  # LSH bucket keys


def _seconds(ts: datetime | float | int) -> float:
    return ts.timestamp() if isinstance(ts, datetime) else float(ts)


class NoveltyIndex:
    """Recent events, searchable by similarity. Not thread-safe: one per worker task."""

    def __init__(self, window_size: int = 50_000, window_seconds: float = 6 * 3600, duplicate_threshold: float = 0.8):
        if window_size < 1 or window_seconds <= 0:
            raise ValueError("window_size and window_seconds must be positive")
        self.window_size = window_size
        self.window_seconds = float(window_seconds)
        self.duplicate_threshold = duplicate_threshold
        self._entries: deque[_Entry] = deque()
        self._buckets: dict[bytes, deque[int]] = {}
        self._by_seq: dict[int, _Entry] = {}
        self._seen: dict[str, tuple[float, str | None]] = {}  # redelivery gives the same answer
        self._seq = 0
        self._latest = float("-inf")

    def __len__(self) -> int:
        return len(self._entries)

    def check_and_add(
        self, event_id: str, text: str, ts: datetime | float | int, key: str | None = None
    ) -> tuple[float, str | None]:
        """Novelty of ``text`` (100 = nothing similar in the window) and the id of the first event it
        duplicates (None unless similarity >= duplicate_threshold); then remember it.

        ``key`` (optional) restricts comparison to events with the same key, e.g. the linked tickers:
        "$AMD getting crushed" is not a copy of "$MSFT getting crushed". A repeated ``event_id``
        (redelivery) gets its first answer back and is not added again."""
        if event_id in self._seen:
            return self._seen[event_id]
        t = _seconds(ts)
        self._latest = max(self._latest, t)
        self._evict()
        sig = signature(canonical(text))
        if sig is None:
            return 100.0, None
        bands = [bytes([b]) + sig[b * ROWS : (b + 1) * ROWS].tobytes() for b in range(BANDS)]

        best: _Entry | None = None
        best_sim = 0.0
        candidates: set[int] = set()
        for band in bands:
            bucket = self._buckets.get(band)
            if bucket:
                candidates.update(bucket)
        for seq in sorted(candidates):  # sorted: ties go to the earliest event, deterministically
            e = self._by_seq[seq]
            if e.key != key or abs(t - e.ts) > self.window_seconds:
                continue
            sim = similarity(sig, e.sig)
            if sim > best_sim:
                best, best_sim = e, sim
        novelty = round(100.0 * (1.0 - best_sim), 1)
        duplicate_of = best.root_id if best is not None and best_sim >= self.duplicate_threshold else None

        self._seq += 1
        entry = _Entry(self._seq, event_id, duplicate_of or event_id, t, key, sig, bands)
        self._entries.append(entry)
        self._by_seq[entry.seq] = entry
        for band in bands:
            self._buckets.setdefault(band, deque()).append(entry.seq)
        self._seen[event_id] = (novelty, duplicate_of)
        if len(self._entries) > self.window_size:
            self._pop_oldest()
        return novelty, duplicate_of

    def _evict(self) -> None:
        horizon = self._latest - self.window_seconds
        while self._entries and self._entries[0].ts < horizon:
            self._pop_oldest()

    def _pop_oldest(self) -> None:
        e = self._entries.popleft()
        del self._by_seq[e.seq]
        self._seen.pop(e.event_id, None)
        for band in e.bands:
            bucket = self._buckets[band]
            # buckets are filled in insertion order and evicted in insertion order
            if bucket and bucket[0] == e.seq:
                bucket.popleft()
            else:  # pragma: no cover - defensive
                bucket.remove(e.seq)
            if not bucket:
                del self._buckets[band]
