"""The alert record sent to webhooks, indexed in Elasticsearch and written by replays."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any, Literal

from consumers.alerting.buckets import Amplification as AmplificationStats
from consumers.alerting.buckets import Contributor, key_type, key_value
from marketpulse.schemas import Alert, Amplification, AmplifiedRoot, TopEvent


def alert_id(key: str, window_start: datetime | float) -> str:
    """Same key + incident start -> same id, so replays and redeliveries overwrite, not duplicate."""
    start = _as_datetime(window_start).isoformat()
    return hashlib.sha256(f"{key}\x1f{start}".encode()).hexdigest()[:32]


def _as_datetime(ts: datetime | float) -> datetime:
    if isinstance(ts, datetime):
        return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(float(ts), tz=timezone.utc)


def es_query(key: str, start: datetime, end: datetime, size: int = 50) -> dict[str, Any]:
    """Negative, non-duplicate events of this key in [start, end), most negative first."""
    filters: list[dict[str, Any]] = [
        {"range": {"published_at": {"gte": start.isoformat(), "lt": end.isoformat()}}},
        {"term": {"sentiment": "negative"}},
    ]
    kind, value = key_type(key), key_value(key)
    if kind == "ticker":
        filters.append({"term": {"ticker_symbols": value}})
    elif kind == "topic":
        filters.append({"term": {"topic": value}})
    return {
        "query": {"bool": {"filter": filters, "must_not": [{"exists": {"field": "duplicate_of"}}]}},
        "sort": [{"sentiment_scores.negative": "desc"}, {"published_at": "desc"}],
        "size": size,
    }


def lucene_query(key: str, start: datetime, end: datetime) -> str:
    kind, value = key_type(key), key_value(key)
    parts = ["sentiment:negative", f'published_at:["{start.isoformat()}" TO "{end.isoformat()}"}}',
             "NOT _exists_:duplicate_of"]
    if kind == "ticker":
        parts.append(f'ticker_symbols:"{value}"')
    elif kind == "topic":
        parts.append(f'topic:"{value}"')
    return " AND ".join(parts)


def build_alert(*, key: str, incident_start: float, window_end: float, observed: float, expected: float,
                score: float, severity: Literal["warning", "critical"], status: Literal["opened", "escalated"],
                contributors: list[Contributor], total: float | None = None,
                expected_share: float | None = None, drilldown_from: float | None = None,
                amplification: AmplificationStats | None = None) -> Alert:
    start, end = _as_datetime(incident_start), _as_datetime(window_end)
    query_start = _as_datetime(drilldown_from) if drilldown_from is not None else start
    return Alert(
        id=alert_id(key, start),
        key=key,
        key_type=key_type(key),
        status=status,
        window_start=start,
        window_end=end,
        observed=round(observed, 4),
        expected=round(expected, 4),
        total_volume=None if total is None else round(total, 4),
        negative_share=None if not total else round(observed / total, 4),
        expected_share=None if expected_share is None else round(expected_share, 4),
        score=round(score, 3),
        severity=severity,
        top_events=[TopEvent(id=c.id, source=c.source, source_name=c.source_name, text=c.text,
                             weight=c.weight, published_at=_as_datetime(c.published_at)) for c in contributors],
        amplification=_amplification(amplification),
        es_query=es_query(key, query_start, end),
        drilldown=lucene_query(key, query_start, end),
    )


def _amplification(amp: AmplificationStats | None) -> Amplification | None:
    if amp is None or not amp.copies:
        return None
    return Amplification(
        copies=amp.copies, authors=amp.authors, ignored=amp.ignored,
        weight=round(amp.negative, 4), total_weight=round(amp.total, 4),
        top_roots=[AmplifiedRoot(id=r.id, copies=r.copies, authors=r.authors, text=r.text)
                     for r in amp.top_roots],
    )
