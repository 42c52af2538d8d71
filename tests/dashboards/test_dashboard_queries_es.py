"""Every Elasticsearch query on the dashboards returns data from real indexed events and alerts.

The panels' Grafana targets are translated to query DSL (dashboards.esquery, mirroring Grafana's
backend) and run against the local Elasticsearch, on test indices built with the production
template, so a renamed field or a broken Lucene query fails here rather than as an empty panel.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from consumers.es_index import ensure_event_template, to_document
from dashboards import esquery
from dashboards.push import ALERTS_UID, EVENTS_UID, load_dashboards, provisioned_datasources
from marketpulse.settings import ElasticsearchSettings

pytestmark = pytest.mark.integration

# Yesterday (UTC): a whole day of data that `check --hours 48` (a range ending now) fully covers.
DAY = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
RANGE = esquery.TimeRange(DAY, DAY + timedelta(days=1))
TICKERS = {"TSLA": "Tesla", "AAPL": "Apple", "NVDA": "Nvidia", "JPM": "JPMorgan", "XOM": "Exxon"}
TOPICS = ["earnings", "macro", "legal", "product", "m&a"]
NEGATIVE_WORDS = ["recall", "probe", "plunge", "lawsuit", "downgrade", "miss", "layoffs"]
POSITIVE_WORDS = ["beats", "record", "upgrade", "surge", "approval"]

ALERTS_MAPPING = {"properties": {
    "id": {"type": "keyword"}, "key": {"type": "keyword"}, "key_type": {"type": "keyword"},
    "window_start": {"type": "date"}, "window_end": {"type": "date"}, "observed": {"type": "float"},
    "expected": {"type": "float"}, "score": {"type": "float"}, "severity": {"type": "keyword"},
    "top_events": {"type": "object", "enabled": False}}}


def labeled_event(i: int, rng: random.Random) -> dict:
    """A LabeledEvent as the worker emits it: mixed sources, topics, sentiments, 0-2 tickers."""
    symbols = rng.sample(sorted(TICKERS), k=rng.choice([0, 1, 1, 1, 2]))
    sentiment = rng.choices(["negative", "neutral", "positive"], weights=[4, 3, 3])[0]
    neg = {"negative": rng.uniform(0.6, 0.99), "neutral": rng.uniform(0.05, 0.5),
           "positive": rng.uniform(0.01, 0.4)}[sentiment]
    rest = (1 - neg) / 2
    word = rng.choice(NEGATIVE_WORDS if sentiment == "negative" else POSITIVE_WORDS)
    names = " and ".join(TICKERS[s] for s in symbols) or "Markets"
    topic = rng.choice(TOPICS)
    source = rng.choice(["news", "social"])
    published = DAY + timedelta(minutes=rng.randrange(0, 24 * 60 - 1))
    return {
        "id": f"evt-{i}", "source": source,
        "source_name": rng.choice(["reuters", "bloomberg"]) if source == "news" else rng.choice(["x", "reddit"]),
        "published_at": published.isoformat(), "processed_at": (published + timedelta(seconds=2)).isoformat(),
        "title": f"{names} {word} as {topic} news lands" if source == "news" else None,
        "text": f"{names} {word}: {' '.join('$' + s for s in symbols)} traders react to the {topic} headline",
        "url": f"https://example.com/{i}" if source == "news" else None, "author": None, "lang": "en",
        "sentiment": sentiment, "sentiment_scores": {"negative": neg, "neutral": rest, "positive": rest},
        "topic": topic, "topic_scores": [{"label": topic, "score": 0.8}, {"label": "macro", "score": 0.1}],
        "tickers": [{"symbol": s, "relevance": 1.0 if j == 0 else 0.5, "matched": TICKERS[s]}
                    for j, s in enumerate(symbols)],
        "novelty": rng.uniform(10, 100), "duplicate_of": None,
        "explanation": [word, topic] if sentiment == "negative" else [],
        "model_version": "finbert-onnx-test", "timings_ms": {"model": rng.uniform(2, 30)},
    }


def alert(key: str, key_type: str, severity: str, start: datetime) -> dict:
    return {"id": f"{key_type}:{key}:{start:%H%M}", "key": key, "key_type": key_type,
            "window_start": start.isoformat(), "window_end": (start + timedelta(minutes=5)).isoformat(),
            "observed": 42.0, "expected": 6.5, "score": 7.3, "severity": severity,
            "top_events": [{"id": "evt-1", "text": "Tesla recall"}]}


@pytest.fixture
def indexed(es, unique):
    """~120 labeled events in a daily index behind a test alias, plus alerts; removed afterwards."""
    prefix = f"it-dash-{unique}-events"
    alerts_index = f"it-dash-{unique}-alerts"
    es_settings = ElasticsearchSettings(index_prefix=prefix, alerts_index=alerts_index)
    ensure_event_template(es, es_settings)
    rng = random.Random(20261123)
    events = [labeled_event(i, rng) for i in range(120)]
    # The ticker drill-down's first ticker (alphabetical) must have alerts and negative news, like TSLA in the demo.
    events[0].update(sentiment="negative", tickers=[{"symbol": "AAPL", "relevance": 1.0, "matched": "Apple"}],
                     explanation=["recall", "probe"])
    ops = []
    for e in events:
        ops += [{"index": {"_index": f"{prefix}-{DAY:%Y.%m.%d}", "_id": e["id"]}}, to_document(e)]
    es.indices.create(index=alerts_index, mappings=ALERTS_MAPPING)
    for a in (alert("AAPL", "ticker", "critical", DAY + timedelta(hours=9)),
              alert("AAPL", "ticker", "warning", DAY + timedelta(hours=14)),
              alert("legal", "topic", "warning", DAY + timedelta(hours=11)),
              alert("market", "market", "critical", DAY + timedelta(hours=15))):
        ops += [{"index": {"_index": alerts_index, "_id": a["id"]}}, a]
    resp = es.bulk(operations=ops, refresh=True)
    assert not resp["errors"], resp
    yield {EVENTS_UID: prefix, ALERTS_UID: alerts_index}
    es.options(ignore_status=404).indices.delete(index=f"it-dash-{unique}-*")
    es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-template")


def _time_fields() -> dict[str, str]:
    return {ds["uid"]: ds["jsonData"]["timeField"] for ds in provisioned_datasources() if ds["type"] == "elasticsearch"}


def _ticker_values(es, index: str, dashboard: dict) -> dict[str, str]:
    """Resolve the dashboard's query variables the way Grafana does: run them, pick the first value."""
    values = {}
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        body = esquery.variable_search(var, RANGE, _time_fields()[var["datasource"]["uid"]])
        buckets = es.search(index=index, **body)["aggregations"]["1"]["buckets"]
        assert buckets, f"variable ${var['name']} has no values"
        values[var["name"]] = buckets[0]["key"]
    return values


def test_every_elasticsearch_panel_and_annotation_returns_data(es, indexed):
    checked = []
    for uid, dashboard in load_dashboards().items():
        variables = _ticker_values(es, indexed[EVENTS_UID], dashboard)
        queries = [*esquery.es_targets(dashboard), *esquery.es_annotations(dashboard)]
        for label, target in queries:
            ds_uid = target["datasource"]["uid"]
            body = esquery.to_search(target, RANGE, variables, _time_fields()[ds_uid])
            response = es.search(index=indexed[ds_uid], **body)
            assert esquery.rows(response, target) > 0, f"{label} returned nothing for {body}"
            checked.append(label)
    # All three ES-backed views were exercised, alerts included.
    assert any(c.startswith("marketpulse-market / annotation") for c in checked)
    assert any(c.startswith("marketpulse-ticker / $ticker alerts") for c in checked)
    assert len(checked) >= 12, checked


def test_ticker_variable_lists_the_tickers_mentioned_in_the_time_range(es, indexed):
    ticker = load_dashboards()["marketpulse-ticker"]
    var = next(v for v in ticker["templating"]["list"] if v["name"] == "ticker")
    body = esquery.variable_search(var, RANGE, "published_at")
    keys = [b["key"] for b in es.search(index=indexed[EVENTS_UID], **body)["aggregations"]["1"]["buckets"]]
    assert keys == sorted(TICKERS)
    outside = esquery.TimeRange(DAY - timedelta(days=2), DAY - timedelta(days=1))
    body = esquery.variable_search(var, outside, "published_at")
    assert es.search(index=indexed[EVENTS_UID], **body)["aggregations"]["1"]["buckets"] == []


def test_most_negative_tickers_counts_only_negative_events(es, indexed):
    market = load_dashboards()["marketpulse-market"]
    label, target = next((l, t) for l, t in esquery.es_targets(market) if "Most negative tickers" in l)
    response = es.search(index=indexed[EVENTS_UID], **esquery.to_search(target, RANGE))
    buckets = response["aggregations"]["3"]["buckets"]
    for b in buckets:
        expected = es.count(index=indexed[EVENTS_UID], query={"bool": {"filter": [
            {"term": {"ticker_symbols": b["key"]}}, {"term": {"sentiment": "negative"}}]}})["count"]
        assert b["doc_count"] == expected
        assert b["4"]["value"] >= 0.6  # mean P(negative) of negative events


def test_latest_negative_headlines_are_newest_first_with_explanations(es, indexed):
    market = load_dashboards()["marketpulse-market"]
    _, target = next((l, t) for l, t in esquery.es_targets(market) if "Latest negative headlines" in l)
    hits = es.search(index=indexed[EVENTS_UID], **esquery.to_search(target, RANGE))["hits"]["hits"]
    times = [h["_source"]["published_at"] for h in hits]
    assert times == sorted(times, reverse=True)
    assert all(h["_source"]["sentiment"] == "negative" and h["_source"]["explanation"] for h in hits)


def _flatten(doc: dict, prefix: str = "") -> set[str]:
    keys = set()
    for k, v in doc.items():
        keys |= _flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
    return keys


def test_headline_and_alert_tables_show_fields_that_exist_in_the_documents(es, indexed):
    """The tables pick columns by name (organize transform); Grafana flattens objects with dots."""
    for dashboard in load_dashboards().values():
        variables = _ticker_values(es, indexed[EVENTS_UID], dashboard)
        for panel in dashboard["panels"]:
            organize = [t for t in panel.get("transformations") or [] if t["id"] == "organize"]
            if not organize:
                continue
            target = panel["targets"][0]
            ds_uid = target["datasource"]["uid"]
            body = esquery.to_search(target, RANGE, variables, _time_fields()[ds_uid])
            fields = set().union(*(_flatten(h["_source"]) for h in es.search(index=indexed[ds_uid], **body)["hits"]["hits"]))
            wanted = set(organize[0]["options"]["includeByName"])
            assert wanted <= fields, f"{panel['title']}: no such fields {wanted - fields}"


def test_check_command_reports_every_query_with_data(es, indexed):
    from typer.testing import CliRunner

    from marketpulse.cli import app

    args = ["dashboards", "check", "--es-url", es.transport.node_pool.get().base_url,
            "--events-index", indexed[EVENTS_UID], "--alerts-index", indexed[ALERTS_UID], "--hours", "48"]
    result = CliRunner().invoke(app, args)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 0, result.output
    assert len(lines) >= 13 and all(line.startswith("ok") for line in lines)
    assert any("marketpulse-ticker / $ticker" in line for line in lines)
