"""End to end on the real stack: raw topics -> faust worker -> events topic -> ES sink -> Elasticsearch.

N records of which k are malformed -> exactly N-k documents with correct fields, k dead letters with
reasons, and no duplicates after the worker is killed (-9) mid-stream and restarted.
"""
import json
import signal
from datetime import datetime, timezone

import pytest
from kafka import KafkaProducer

from marketpulse.schemas import RawEvent
from marketpulse.kafka_topics import ensure_topics
from tests.support import read_topic, wait_until

pytestmark = pytest.mark.integration

TOPICS = {"Analyst Update", "Fed | Central Banks", "Company | Product News", "Treasuries | Corporate Debt",
          "Dividend", "Earnings", "Energy | Oil", "Financials", "Currencies", "General News | Opinion",
          "Gold | Metals | Materials", "IPO", "Legal | Regulation", "M&A | Investments", "Macro", "Markets",
          "Politics", "Personnel Change", "Stock Commentary", "Stock Movement"}
SUBJECTS = ["Tesla", "Apple", "Nvidia", "JPMorgan", "Exxon", "Boeing", "Pfizer", "Amazon", "Intel", "Netflix"]
VERBS = ["shares plunge after weak guidance", "beats earnings estimates and raises dividend",
         "announces new chief financial officer", "faces SEC probe over accounting",
         "stock rallies on strong iPhone demand"]


def valid_event(i: int, source: str = "news") -> RawEvent:
    text = f"{SUBJECTS[i % 10]} {VERBS[i % 5]} (item {i}) https://example.com/{i}"
    return RawEvent(id=f"e2e-{i}", source=source, source_name="e2e-wire",
                    published_at=datetime(2026, 11, 23, 14, i % 60, tzinfo=timezone.utc), text=text,
                    title=f"{SUBJECTS[i % 10]} item {i}", url=f"https://example.com/{i}")


def malformed(max_chars: int) -> list[bytes]:
    base = valid_event(999).model_dump(mode="json")
    return [
        b"this is not json",
        b'{"id": "x", "text": "\xff\xfe broken utf-8"}',
        json.dumps({k: v for k, v in base.items() if k != "text"}).encode(),      # missing text
        json.dumps({**base, "text": "   "}).encode(),                               # empty text
        json.dumps({**base, "source": 5}).encode(),                                 # wrong type
        json.dumps({**base, "text": "x" * (max_chars + 1)}).encode(),               # oversize
        json.dumps([base]).encode(),                                                # not an object
        json.dumps({**base, "text": "bad\u0000nul"}).encode(),                      # NUL byte
    ]


def es_count(es, alias: str) -> int:
    if not es.indices.exists_alias(name=alias):
        return 0
    es.indices.refresh(index=alias)
    return es.count(index=alias)["count"]


def test_pipeline_labels_valid_records_deadletters_bad_ones_and_survives_a_worker_kill(isolated, es):
    s = isolated.settings
    ensure_topics(s.kafka)
    alias = s.elasticsearch.index_prefix
    worker = isolated.start("worker")
    isolated.start("sink")

    producer = KafkaProducer(bootstrap_servers=s.kafka.bootstrap, acks="all")
    first = [valid_event(i, "news" if i % 2 else "social") for i in range(30)]
    bad = malformed(s.batch.max_text_chars)
    for e in first:
        producer.send(s.kafka.topics.raw_news if e.source == "news" else s.kafka.topics.raw_social,
                      key=e.id.encode(), value=e.model_dump_json().encode())
    for j, value in enumerate(bad):
        producer.send(s.kafka.topics.raw_news, key=f"bad-{j}".encode(), value=value)
    producer.flush()

    try:
        wait_until(lambda: es_count(es, alias) >= 30, 240, what="first 30 documents in ES")
    except AssertionError:
        pytest.fail(isolated.log_tail(worker))

    isolated.stop(worker, signal.SIGKILL)
    second = [valid_event(i) for i in range(30, 50)]
    for e in second:
        producer.send(s.kafka.topics.raw_news, key=e.id.encode(), value=e.model_dump_json().encode())
    producer.flush(); producer.close()
    worker = isolated.start("worker")
    wait_until(lambda: es_count(es, alias) >= 50, 240, what="all 50 documents in ES")

    # exactly the valid records, once each
    res = es.search(index=alias, size=100, query={"match_all": {}})
    ids = sorted(h["_source"]["id"] for h in res["hits"]["hits"])
    assert ids == sorted(e.id for e in first + second)
    for hit in res["hits"]["hits"]:
        doc = hit["_source"]
        assert hit["_id"] == f"{doc['source']}:{doc['id']}"
        assert doc["sentiment"] in {"negative", "neutral", "positive"}
        assert abs(sum(doc["sentiment_scores"].values()) - 1) < 1e-3
        assert doc["topic"] in TOPICS and len(doc["topic_scores"]) == 3
        assert doc["model_version"] and doc["processed_at"]
        assert "https://" not in " ".join(doc.get("explanation", []))
        assert hit["_index"] == f"{alias}-2026.11.23"
    assert any(t["symbol"] == "TSLA" for h in res["hits"]["hits"] for t in h["_source"]["tickers"])

    # every malformed record dead-lettered, with a reason and its original bytes
    def dead_letters():
        dead = [json.loads(m.value) for m in read_topic(s.kafka.bootstrap, s.kafka.topics.deadletter)]
        return dead, {(d["source"]["topic"], d["source"]["partition"], d["source"]["offset"]) for d in dead}

    # read to the topic's end until all are there (the last ones may still be on their way), then count
    wait_until(lambda: len(dead_letters()[1]) >= len(bad), 120, 1.0, what="every malformed record dead-lettered")
    dead, positions = dead_letters()
    # at least once: a record re-read after the kill may be dead-lettered again, never lost
    assert len(positions) == len(bad)
    assert all(d["reason"] and d["source"]["topic"] == s.kafka.topics.raw_news for d in dead)
    assert {d["original_encoding"] for d in dead} == {"utf-8", "base64"}
    assert {d["reason"] for d in dead} >= {"not_json", "not_utf8", "schema", "empty_text", "oversize", "not_object"}

    # SIGTERM: the worker finishes and exits cleanly
    assert isolated.stop(worker, signal.SIGTERM, timeout=60) == 0, isolated.log_tail(worker)
