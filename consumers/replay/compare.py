"""Side-by-side comparison of the alerts several configurations (or models) fired on one history.

Incidents are the ``opened`` records. Two incidents from configs A and B overlap when they have the
same key and their windows are at most ``tolerance_buckets`` apart; each incident matches at most
one on the other side (closest first). Lead time = B's firing time - A's firing time, so a positive
lead means A fired earlier. Firing time is the event time of the bucket that opened the incident
(``window_end``), which is what a live alerter would have waited for.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from itertools import combinations

from marketpulse.schemas import Alert


@dataclass(frozen=True)
class Match:
    key: str
    a: Alert
    b: Alert

    @property
    def lead_s(self) -> float:
        return (self.b.window_end - self.a.window_end).total_seconds()


@dataclass
class PairStats:
    a: str
    b: str
    matches: list[Match] = field(default_factory=list)
    only_a: list[Alert] = field(default_factory=list)
    only_b: list[Alert] = field(default_factory=list)

    @property
    def overlap(self) -> int:
        return len(self.matches)

    @property
    def jaccard(self) -> float:
        n = self.overlap + len(self.only_a) + len(self.only_b)
        return self.overlap / n if n else 1.0

    @property
    def median_lead_s(self) -> float | None:
        return statistics.median(m.lead_s for m in self.matches) if self.matches else None

    @property
    def a_earlier(self) -> int:
        return sum(1 for m in self.matches if m.lead_s > 0)

    @property
    def b_earlier(self) -> int:
        return sum(1 for m in self.matches if m.lead_s < 0)


@dataclass
class Comparison:
    counts: dict[str, dict[str, int]]  # config -> {"incidents", "escalations", "critical"}
    pairs: list[PairStats]


def incidents(alerts: list[Alert]) -> list[Alert]:
    return [a for a in alerts if a.status == "opened"]


def _gap_s(a: Alert, b: Alert) -> float:
    """0 when the windows overlap, else the time between them."""
    return max(0.0, (max(a.window_start, b.window_start) - min(a.window_end, b.window_end)).total_seconds())


def match_incidents(a_alerts: list[Alert], b_alerts: list[Alert], bucket_s: int,
                    tolerance_buckets: int = 5, a: str = "A", b: str = "B") -> PairStats:
    tol = tolerance_buckets * bucket_s
    a_inc, b_inc = incidents(a_alerts), incidents(b_alerts)
    candidates = sorted(
        ((_gap_s(x, y), abs((x.window_end - y.window_end).total_seconds()), i, j)
         for i, x in enumerate(a_inc) for j, y in enumerate(b_inc)
         if x.key == y.key and _gap_s(x, y) <= tol),
    )
    used_a: set[int] = set()
    used_b: set[int] = set()
    stats = PairStats(a, b)
    for _, _, i, j in candidates:  # closest pairs first: greedy one-to-one matching
        if i in used_a or j in used_b:
            continue
        used_a.add(i); used_b.add(j)
        stats.matches.append(Match(a_inc[i].key, a_inc[i], b_inc[j]))
    stats.matches.sort(key=lambda m: (m.a.window_start, m.key))
    stats.only_a = [x for i, x in enumerate(a_inc) if i not in used_a]
    stats.only_b = [y for j, y in enumerate(b_inc) if j not in used_b]
    return stats


def compare_alerts(alerts_by_name: dict[str, list[Alert]], bucket_s: int,
                   tolerance_buckets: int = 5) -> Comparison:
    counts = {name: {"incidents": len(incidents(al)),
                     "escalations": sum(1 for x in al if x.status == "escalated"),
                     "critical": sum(1 for x in al if x.severity == "critical")}
              for name, al in alerts_by_name.items()}
    pairs = [match_incidents(alerts_by_name[x], alerts_by_name[y], bucket_s, tolerance_buckets, x, y)
             for x, y in combinations(alerts_by_name, 2)]
    return Comparison(counts, pairs)
