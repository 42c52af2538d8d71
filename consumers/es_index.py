"""Elasticsearch layout: labeled events in daily indices behind an alias (composable template), and
single indices (alerts, webhook attempts) kept as best-effort copies of their Kafka topics."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError

from consumers.retention import ensure_lifecycle, policy_name
from marketpulse.settings import ElasticsearchSettings

log = logging.getLogger(__name__)

EVENT_MAPPINGS: dict = {
    "dynamic": "strict",
    "properties": {
        "id": {"type": "keyword"},
        "source": {"type": "keyword"},
        "source_name": {"type": "keyword"},
        "published_at": {"type": "date"},
        "processed_at": {"type": "date"},
        "indexed_at": {"type": "date"},
        "text": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 512}}},
        "title": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 512}}},
        "url": {"type": "keyword", "ignore_above": 2048},
        "author": {"type": "keyword"},
        "lang": {"type": "keyword"},
        "sentiment": {"type": "keyword"},
        "sentiment_scores": {"properties": {l: {"type": "float"} for l in ("negative", "neutral", "positive")}},
        "topic": {"type": "keyword"},
        "topic_scores": {"type": "nested", "properties": {"label": {"type": "keyword"}, "score": {"type": "float"}}},
        "tickers": {"type": "nested", "properties": {
            "symbol": {"type": "keyword"}, "relevance": {"type": "float"}, "matched": {"type": "keyword"}}},
        "ticker_symbols": {"type": "keyword"},
        "novelty": {"type": "float"},
        "duplicate_of": {"type": "keyword"},
        "explanation": {"type": "keyword"},
        "model_version": {"type": "keyword"},
        "timings_ms": {"type": "object", "dynamic": True},
    },
}


def template_name(es_settings: ElasticsearchSettings) -> str:
    return f"{es_settings.index_prefix}-template"


def daily_index(es_settings: ElasticsearchSettings, when: datetime, now: datetime | None = None) -> str:
    """marketpulse-events-YYYY.MM.DD, by the event's publication day (UTC); events published more
    than ``archive_after_days`` before ``now`` go to marketpulse-events-archive instead, so a
    backfill of old or oddly dated records cannot create an index per day (both join the alias)."""
    now = now or datetime.now(timezone.utc)
    if (now - when).days > es_settings.archive_after_days:
        return f"{es_settings.index_prefix}-archive"
    return f"{es_settings.index_prefix}-{when.astimezone(timezone.utc):%Y.%m.%d}"


def ensure_event_template(es: Elasticsearch, es_settings: ElasticsearchSettings) -> None:
    """Every daily index gets the explicit mappings and ``refresh_interval``, joins the read alias
    automatically and, where the cluster has lifecycle management, is deleted ``retention_days`` after
    its day. A template applies to indices created after it: today's index keeps its refresh interval
    until tomorrow's is created (or ``PUT <alias>/_settings`` changes it)."""
    prefix = es_settings.index_prefix
    settings: dict[str, Any] = {"number_of_shards": es_settings.number_of_shards,
                                "number_of_replicas": es_settings.number_of_replicas,
                                "refresh_interval": es_settings.refresh_interval}
    if ensure_lifecycle(es, es_settings):
        # The index's age counts from the day in its name, not from when it was created.
        settings |= {"index.lifecycle.name": policy_name(es_settings), "index.lifecycle.parse_origination_date": True}
    es.indices.put_index_template(
        name=template_name(es_settings),
        index_patterns=[f"{prefix}-*"],
        priority=200,
        template={
            "settings": settings,
            "mappings": EVENT_MAPPINGS,
            "aliases": {prefix: {}},
        },
    )


def to_document(event: dict) -> dict:
    """A LabeledEvent (as JSON dict) in the shape of EVENT_MAPPINGS."""
    doc = dict(event)
    doc["ticker_symbols"] = sorted({t["symbol"] for t in event.get("tickers") or []})
    doc["indexed_at"] = datetime.now(timezone.utc).isoformat()
    return doc


ALERT_MAPPINGS: dict = {
    "properties": {
        "id": {"type": "keyword"}, "key": {"type": "keyword"}, "key_type": {"type": "keyword"},
        "status": {"type": "keyword"}, "severity": {"type": "keyword"},
        "window_start": {"type": "date"}, "window_end": {"type": "date"}, "fired_at": {"type": "date"},
        "observed": {"type": "float"}, "expected": {"type": "float"}, "score": {"type": "float"},
        "total_volume": {"type": "float"}, "negative_share": {"type": "float"}, "expected_share": {"type": "float"},
        "top_events": {"properties": {"id": {"type": "keyword"}, "source": {"type": "keyword"},
                                      "source_name": {"type": "keyword"}, "text": {"type": "text"},
                                      "weight": {"type": "float"}, "published_at": {"type": "date"},
                                      "explanation": {"type": "keyword"}}},
        "es_query": {"type": "object", "enabled": False},
        "drilldown": {"type": "keyword", "index": False},
    },
}

DELIVERY_MAPPINGS: dict = {
    "properties": {
        "delivery_id": {"type": "keyword"}, "alert_id": {"type": "keyword"}, "endpoint": {"type": "keyword"},
        "attempt": {"type": "integer"}, "status": {"type": "keyword"}, "http_status": {"type": "integer"},
        "error": {"type": "text"}, "at": {"type": "date"}, "duration_ms": {"type": "float"},
    },
}


def ensure_index(es: Elasticsearch, name: str, mappings: dict) -> None:
    """Creates a single (non-daily) index with explicit mappings if it does not exist yet."""
    if not es.indices.exists(index=name):
        es.options(ignore_status=400).indices.create(
            index=name, mappings=mappings, settings={"number_of_shards": 1, "number_of_replicas": 0})


class IndexCopy:
    """A single index kept as a best-effort copy of what is on a Kafka topic (alerts, webhook
    attempts): Elasticsearch being away must not stop what the copy describes. A document that
    could not be written is kept (bounded) and written again before the next one; ids are
    deterministic, so a late write overwrites."""

    def __init__(self, es: Any, index: str, mappings: dict, max_pending: int = 10_000, retry_every_s: float = 5.0,
                 refresh: str | None = None):
        self.es, self.index, self.mappings = es, index, mappings
        self.max_pending, self.retry_every_s, self.refresh = max_pending, retry_every_s, refresh
        self.pending: dict[str, dict[str, Any]] = {}
        self._ready = False
        self._failed_at: float | None = None

    def store(self, doc_id: str, doc: dict[str, Any]) -> None:
        self.pending.pop(doc_id, None)
        self.pending[doc_id] = doc  # the newest version of an id wins (an escalation replaces its opening)
        while len(self.pending) > self.max_pending:
            dropped = next(iter(self.pending))
            log.error("index %s unreachable for long: %s not kept for it (it is on the topic)", self.index, dropped)
            del self.pending[dropped]
        self.retry()

    def retry(self, force: bool = False) -> None:
        """Writes what is pending; after a failure, not again for ``retry_every_s`` (each attempt
        can wait for a request timeout, and the caller has other work meanwhile)."""
        if not force and self._failed_at is not None and time.monotonic() - self._failed_at < self.retry_every_s:
            return
        try:
            if not self._ready:
                ensure_index(self.es, self.index, self.mappings)
                self._ready = True
            while self.pending:
                doc_id, doc = next(iter(self.pending.items()))
                self.es.index(index=self.index, id=doc_id, document=doc, refresh=self.refresh)
                del self.pending[doc_id]
            self._failed_at = None
        except (TransportError, ApiError) as exc:
            self._failed_at = time.monotonic()
            log.warning("index %s not written (%s); %d document(s) kept to write again", self.index,
                        type(exc).__name__, len(self.pending))
