"""Per-bucket volume and negative volume per key, for the report's negative-share plots.

Uses the alerter's own weighting (``event_weights``: probability of negative, ticker relevance,
near-duplicates skipped), so the plotted share is the one the detector saw.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from consumers.alerting.buckets import event_weights
from marketpulse.schemas import LabeledEvent


class ShareSeries:
    def __init__(self, bucket_s: int):
        self.bucket_s = bucket_s
        # key -> bucket start -> [total, negative]
        self.data: dict[str, dict[int, list[float]]] = defaultdict(dict)
        self.volume: Counter[str] = Counter()

    def add(self, event: LabeledEvent) -> None:
        if event.duplicate_of:
            return
        start = int(event.published_at.timestamp() // self.bucket_s) * self.bucket_s
        for key, (total, negative) in event_weights(event).items():
            cell = self.data[key].setdefault(start, [0.0, 0.0])
            cell[0] += total
            cell[1] += negative
            self.volume[key] += total

    def top(self, kind: str, n: int) -> list[str]:
        """The n keys of this kind (``ticker``/``topic``) with the most volume."""
        return [k for k, _ in sorted(((k, v) for k, v in self.volume.items() if k.startswith(f"{kind}:")),
                                     key=lambda kv: (-kv[1], kv[0]))[:n]]

    def share(self, key: str, smooth: int = 1) -> tuple[list[int], list[float]]:
        """(bucket starts, negative share) over a trailing window of ``smooth`` buckets; buckets
        without volume are skipped."""
        cells = self.data.get(key, {})
        if not cells:
            return [], []
        first, last = min(cells), max(cells)
        xs, ys = [], []
        window: list[list[float]] = []
        for start in range(first, last + self.bucket_s, self.bucket_s):
            window.append(cells.get(start, [0.0, 0.0]))
            window = window[-smooth:]
            tot = sum(c[0] for c in window)
            if tot > 0:
                xs.append(start)
                ys.append(sum(c[1] for c in window) / tot)
        return xs, ys

    def to_dict(self) -> dict[str, Any]:
        return {k: {str(s): v for s, v in cells.items()} for k, cells in self.data.items()}
