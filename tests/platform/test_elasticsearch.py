"""The real local Elasticsearch: index template, daily index + alias, idempotent bulk, query."""
from datetime import datetime, timezone

import pytest
from elasticsearch import helpers

from consumers.es_index import daily_index, ensure_event_template, template_name, to_document
from marketpulse.settings import ElasticsearchSettings

pytestmark = pytest.mark.integration


def _event(i: int, sentiment: str) -> dict:
    return {"id": f"e{i}", "source": "news", "source_name": "wire", "published_at": "2026-11-23T10:00:00+00:00",
            "text": f"headline {i}", "lang": "en", "sentiment": sentiment,
            "sentiment_scores": {"negative": 0.8, "neutral": 0.1, "positive": 0.1}, "topic": "Earnings",
            "topic_scores": [{"label": "Earnings", "score": 0.9}],
            "tickers": [{"symbol": "AAPL", "relevance": 1.0, "matched": "$AAPL"}], "novelty": 100.0,
            "model_version": "test", "processed_at": "2026-11-23T10:00:01+00:00"}


def test_template_bulk_and_query(es, unique):
    s = ElasticsearchSettings(index_prefix=f"it-events-{unique}", refresh_interval="500ms")
    ensure_event_template(es, s)
    assert es.indices.exists_index_template(name=template_name(s))

    index = daily_index(s, datetime(2026, 11, 23, 23, 30, tzinfo=timezone.utc),
                        now=datetime(2026, 11, 24, 1, tzinfo=timezone.utc))
    assert index == f"it-events-{unique}-2026.11.23"
    actions = [{"_index": index, "_id": f"news:e{i}", "_source": to_document(_event(i, "negative" if i % 3 else "positive"))}
               for i in range(30)]
    ok, errors = helpers.bulk(es, actions, refresh="wait_for")
    assert (ok, errors) == (30, [])
    # the same bulk again overwrites (deterministic _id): still 30 documents
    helpers.bulk(es, actions, refresh="wait_for")

    alias = s.index_prefix
    assert es.count(index=alias)["count"] == 30
    assert es.indices.get_settings(index=index)[index]["settings"]["index"]["refresh_interval"] == "500ms"
    mapping = es.indices.get_mapping(index=index)[index]["mappings"]
    assert mapping["properties"]["tickers"]["type"] == "nested"
    res = es.search(index=alias, size=0, query={"term": {"sentiment": "negative"}},
                    aggs={"by_ticker": {"terms": {"field": "ticker_symbols"}}})
    assert res["hits"]["total"]["value"] == 20
    assert res["aggregations"]["by_ticker"]["buckets"] == [{"key": "AAPL", "doc_count": 20}]

    with pytest.raises(helpers.BulkIndexError):  # strict mappings reject unknown fields
        helpers.bulk(es, [{"_index": index, "_id": "bad", "_source": {"nope": 1}}])
    es.indices.delete(index=index)
    es.indices.delete_index_template(name=template_name(s))


def test_events_older_than_the_archive_age_share_one_archive_index():
    s = ElasticsearchSettings(index_prefix="ev", archive_after_days=90)
    now = datetime(2026, 11, 24, tzinfo=timezone.utc)
    assert daily_index(s, datetime(2026, 8, 27, tzinfo=timezone.utc), now=now) == "ev-2026.08.27"  # 89 days
    assert daily_index(s, datetime(2026, 8, 25, tzinfo=timezone.utc), now=now) == "ev-archive"
    assert daily_index(s, datetime(1900, 1, 1, tzinfo=timezone.utc), now=now) == "ev-archive"
